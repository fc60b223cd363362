"""`digestbot run --once`, `status` and `digest send` through CliRunner, and the Runner's jobs (T12)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.deliver import catalog_lane
from bot.runner import Platforms, Runner, is_fetch_due
from digests.models import FetchRun
from digests.schedule import Calendar
from tests.fake_platform import add_channel


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def console_channel():
    from digests.service import open_core

    core = open_core(sync=False)
    created = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="seconds")
    add_channel(core, "console:demo", created_at=created)
    return "console:demo"


def test_send_posts_once_then_says_already(console_channel):
    first = invoke("digest", "send", console_channel)
    assert first.exit_code == 0, first.output
    assert f"--- {console_channel} · {console_channel}|" in first.output
    assert "Posted console:demo|" in first.output

    second = invoke("digest", "send", console_channel)
    assert second.exit_code == 0
    assert "was already delivered (console:demo#1); use --force to post it again." in second.output
    assert "---" not in second.output

    forced = invoke("digest", "send", console_channel, "--force")
    assert forced.exit_code == 0 and forced.output.count(f"--- {console_channel}") == 1


def test_send_unknown_channel_is_one_line_error():
    result = CliRunner().invoke(cli, ["digest", "send", "console:nobody"])
    assert result.exit_code == 1
    assert "Error: console:nobody has no subscription yet" in result.output
    assert "Traceback" not in result.output


def test_send_to_slack_without_token_names_the_variable():
    from digests.service import open_core

    add_channel(open_core(sync=False), "slack:T1:C1")
    result = CliRunner().invoke(cli, ["digest", "send", "slack:T1:C1"])
    assert result.exit_code == 1 and "SLACK_BOT_TOKEN" in result.output


def test_status_text_and_json(console_channel):
    invoke("digest", "send", console_channel)
    text = invoke("status")
    assert text.exit_code == 0
    assert "console:demo  [rlhf]  next " in text.output and "last 20" in text.output
    assert "No arXiv fetch has run yet" in text.output
    data = json.loads(invoke("status", "--json").output)
    (channel,) = data["channels"]
    assert channel["channel"] == "console:demo" and channel["last_digest"]["message_ref"] == "console:demo#1"
    assert channel["next_run"] and data["fetch_runs"] == []


def test_status_without_channels():
    result = invoke("status")
    assert "No channels yet; add one with: digestbot subscribe" in result.output


def test_run_once_delivers_due_digest_then_nothing(console_channel):
    first = invoke("run", "--once", "--no-fetch")
    assert first.exit_code == 0, first.output
    assert "console:demo: posted" in first.output
    assert "console:* channels only" in first.output
    second = invoke("run", "--once", "--no-fetch")
    assert "Nothing was due." in second.output


async def test_runner_registers_jobs_and_stops_cleanly(fresh_core, fixed_now, capsys):
    add_channel(fresh_core, "console:a")
    add_channel(fresh_core, "slack:T1:C1", weekday=3, tz="Europe/Berlin")
    fetched = []

    def fake_fetch(core, now):
        fetched.append(now)

    runner = Runner(fresh_core, Platforms(), fetch=fake_fetch, say=lambda text: None, batch_delay=0)
    await runner.start(fetch_if_due=False)
    try:
        ids = sorted(job.id for job in runner.scheduler.get_jobs())
        assert ids == ["digest:console:a", "digest:slack:T1:C1", "fetch", "sweep"]
        await runner.run_fetch()
        assert fetched == [fixed_now]
        catch_up = next(t for t in runner.tasks if t.get_name() == "catch-up")
        assert {r.channel: r.outcome for r in await catch_up}["console:a"] == "posted"
        # two jobs firing together share one batch; the digest caught up at start is not sent again
        slack, console = await asyncio.gather(runner.run_digest("slack:T1:C1"), runner.run_digest("console:a"))
        assert slack.outcome == "unavailable" and "SLACK_BOT_TOKEN" in slack.detail
        assert console.outcome == "already"
        assert capsys.readouterr().out.count("--- console:a") == 1
    finally:
        await runner.stop()
    assert not runner.scheduler.running


def test_fetch_due_when_arxiv_announced_since_last_run(fresh_core, fixed_now):
    from digests.fetch import record_run

    assert is_fetch_due(fresh_core, fixed_now, Calendar())
    record_run(fresh_core, FetchRun(id=None, started="2026-11-25T01:35:00+00:00", finished=None,
                                    window_start="2026-11-18", window_end="2026-11-25", outcome="ok"))
    assert not is_fetch_due(fresh_core, fixed_now, Calendar())
    assert is_fetch_due(fresh_core, datetime(2026, 11, 26, 2, tzinfo=UTC), Calendar())
    catalog_lane(fresh_core).close()


@pytest.mark.parametrize("variable", ["SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"])
def test_run_with_a_slack_variable_but_no_bot_token_is_one_line_error(variable):
    secret = "xapp-1-A0-123-not-echoed" if variable == "SLACK_APP_TOKEN" else "0123abcd-not-echoed"
    result = CliRunner().invoke(cli, ["run", "--once", "--no-fetch"], env={variable: secret})
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        (f"Error: {variable} is set but SLACK_BOT_TOKEN is not; set SLACK_BOT_TOKEN (the Bot User OAuth Token, "
         f"xoxb-...) or unset {variable}")]
    assert secret not in result.output and "Traceback" not in result.output
    # --no-slack means the Slack variables are not this run's business
    assert invoke("run", "--once", "--no-fetch", "--no-slack").exit_code == 0


@pytest.fixture
async def slack_run_core(fresh_core):
    import dataclasses

    from bot.slack_app import close_lanes
    from tests.slack_fakes import TEST_BOT_TOKEN, TEST_SIGNING_SECRET, FakeSlackAPI

    fake = await FakeSlackAPI().start()
    settings = dataclasses.replace(fresh_core.settings, slack_bot_token=TEST_BOT_TOKEN, slack_port=0,
                                   slack_signing_secret=TEST_SIGNING_SECRET, slack_api_url=fake.api_url)
    core = dataclasses.replace(fresh_core, settings=settings)
    yield core, fake
    close_lanes(core)
    await fake.stop()


async def test_runner_says_slack_is_served_only_once_it_is_ready(slack_run_core):
    from tests.slack_fakes import TEAM_ID

    core, _ = slack_run_core
    said: list[str] = []
    ready = asyncio.Event()

    def say(text: str) -> None:
        said.append(text)
        if text.startswith("Slack:"):
            ready.set()

    runner = Runner(core, Platforms(slack=True), say=say, batch_delay=0)
    await runner.start(fetch_if_due=False)
    try:
        assert not any("Serving Slack" in line or line.startswith("Slack:") for line in said)
        await asyncio.wait_for(ready.wait(), 30)
    finally:
        await runner.stop()
    [line] = [line for line in said if line.startswith("Slack:")]
    assert line.startswith(f"Slack: http mode, workspace {TEAM_ID} on port ")


async def test_runner_with_a_refused_slack_token_never_says_it_serves_slack(slack_run_core):
    from digests.errors import ConfigError

    core, fake = slack_run_core
    fake.script("auth.test", error="invalid_auth")
    said: list[str] = []
    runner = Runner(core, Platforms(slack=True), say=said.append, batch_delay=0)
    await runner.start(fetch_if_due=False)
    try:
        with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
            await asyncio.wait_for(runner.wait(), 30)
    finally:
        await runner.stop()
    assert not any("Serving Slack" in line or line.startswith("Slack:") for line in said)


def test_platforms_describe_what_the_run_does():
    assert Platforms(discord=True).describe() == "Serving Discord; console:* digests are printed here."
    assert Platforms(slack=True).describe() == "Connecting to Slack; console:* digests are printed here."
    assert Platforms(slack=True, discord=True).describe(once=True) == (
        "Posting due digests to Slack and Discord; console:* digests are printed here.")
