"""`digestbot subscribe / unsubscribe / channels / digest preview` through CliRunner on a real SQLite file."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from bot.cli import cli

NOW = "2026-11-25T12:00:00+00:00"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def arxiv_week():
    """A catalog with one matched arXiv paper this week and an ok fetch run."""
    from digests import catalog
    from digests.fetch import record_run
    from digests.models import FetchRun, Paper, ThemeScore
    from digests.service import open_core

    core = open_core()
    now = datetime(2026, 11, 24, 1, tzinfo=UTC)
    stored = catalog.upsert_arxiv_papers(core, [Paper(title="Reward hacking in <!channel> RLHF", arxiv_id="2611.01234",
                                                      version=1, origin="arxiv", announced="2026-11-24",
                                                      authors=("A. Author",))], now).new[0]
    catalog.store_scores(core, stored.id, [ThemeScore("rlhf", 0.9, True, why=("Seed paper",))])
    record_run(core, FetchRun(id=None, started="2026-11-25T01:00:00+00:00", finished="2026-11-25T01:00:00+00:00",
                              window_start="2026-11-18T01:00:00+00:00", window_end="2026-11-25T01:00:00+00:00",
                              outcome="ok", scanned={"cs.CL": 1204}))
    return stored


def test_subscribe_prints_schedule():
    result = invoke("subscribe", "console:me", "--theme", "rlhf", "--theme", "oversight", "--tz", "Europe/Berlin")
    assert result.exit_code == 0
    assert result.output == (
        "Subscribed console:me to rlhf, oversight.\n"
        "Digest: Mondays at 09:00 (Europe/Berlin), 5 new papers + 1 classic.\n"
    )


def test_subscribe_with_day_and_time_json():
    result = invoke("subscribe", "slack:T1:C1", "-t", "rlhf", "--day", "thu", "--time", "14:30", "--json")
    data = json.loads(result.output)
    assert (data["day"], data["time"], data["tz"], data["themes"], data["source"]) == ("thu", "14:30", "UTC", ["rlhf"],
                                                                                       "cli")


@pytest.mark.parametrize(("args", "message"), [
    (["subscribe", "console:me", "--theme", "cooking"], "Error: "),
    (["subscribe", "general", "--theme", "rlhf"], "Error: 'general' is not a channel key; use slack:<team>:<channel>"),
    (["subscribe", "console:me", "--theme", "rlhf", "--day", "someday"], "Error: 'someday' is not a weekday"),
    (["subscribe", "console:me", "--theme", "rlhf", "--tz", "Moon/Base"], "Error: 'Moon/Base' is not a time zone"),
    (["unsubscribe", "console:nobody"], "Error: console:nobody has no subscription yet"),
    (["digest", "preview", "console:nobody"], "Error: console:nobody has no subscription yet"),
])
def test_errors_are_one_line(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_unknown_theme_lists_the_themes():
    result = CliRunner().invoke(cli, ["subscribe", "console:me", "--theme", "cooking"])
    assert "'cooking'" in result.output and "rlhf" in result.output and "oversight" in result.output


def test_bad_day_leaves_nothing_half_applied():
    CliRunner().invoke(cli, ["subscribe", "console:me", "--theme", "rlhf", "--day", "someday"])
    assert json.loads(invoke("channels", "--json").output) == []


def test_unsubscribe_then_pause_and_channels_list():
    invoke("subscribe", "console:me", "-t", "rlhf", "-t", "oversight")
    assert invoke("unsubscribe", "console:me", "--theme", "oversight").output == (
        "Unsubscribed console:me from oversight; still following rlhf.\n")
    paused = invoke("unsubscribe", "console:me")
    assert paused.output.startswith("console:me is paused: no themes left.")
    listing = invoke("channels")
    assert listing.output == "console:me  [paused]  -  Mondays at 09:00 (UTC), 5 new papers + 1 classic  (cli)\n"
    assert json.loads(invoke("channels", "--json").output)[0]["paused"] is True


def test_channels_empty_says_how_to_start():
    assert invoke("channels").output.startswith("No channels yet. Subscribe one with: digestbot subscribe")


def test_digest_preview_text(arxiv_week):
    invoke("subscribe", "console:me", "--theme", "rlhf")
    result = invoke("digest", "preview", "console:me", "--now", NOW)
    assert result.exit_code == 0
    assert "Reward hacking" in result.output
    last_line = result.output.rstrip().splitlines()[-1]
    assert last_line.startswith("1 new paper in ")
    assert last_line.endswith("; scanned 1,204 cs.CL papers from arXiv, Nov 23-25.")


@pytest.mark.parametrize("fmt", ["slack", "discord"])
def test_digest_preview_platform_payloads_json(arxiv_week, fmt):
    invoke("subscribe", "console:me", "--theme", "rlhf")
    data = json.loads(invoke("digest", "preview", "console:me", "--format", fmt, "--json", "--now", NOW).output)
    assert data["digest"]["id"] == "console:me|2026-W48"
    assert data["digest"]["items"][0]["paper"]["arxiv_id"] == "2611.01234"
    assert isinstance(data["rendered"], list) and data["rendered"]
    assert "<!channel>" not in json.dumps(data["rendered"])


def test_digest_preview_records_nothing(arxiv_week):
    from digests.service import open_core

    invoke("subscribe", "console:me", "--theme", "rlhf")
    invoke("digest", "preview", "console:me", "--now", NOW)
    db = open_core(sync=False).db
    assert (db["sent_papers"].count, db["deliveries"].count, db["classics_shown"].count) == (0, 0, 0)


def test_preview_bad_now():
    result = CliRunner().invoke(cli, ["digest", "preview", "console:me", "--now", "tuesday"])
    assert result.exit_code == 2
    assert "not an ISO time" in result.output


@pytest.mark.parametrize("name", ["subscribe", "unsubscribe", "channels", "digest"])
def test_help_has_example(name):
    result = invoke(name, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output and "digestbot" in result.output


def test_preview_help_has_example():
    assert "Example:" in invoke("digest", "preview", "--help").output


def test_digest_group_has_send_and_status_is_reachable():
    assert "send" in invoke("digest", "--help").output
    assert invoke("status", "--help").exit_code == 0
