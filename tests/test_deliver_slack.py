"""The ledger + deliverer driving the real SlackPoster (from the poster registry) against G's loopback Slack API."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.deliver import Deliverer, catalog_lane
from bot.posting import RateLimiter, SimulatedCrash
from digests import ledger
from digests.channels import get_channel
from tests.fake_platform import add_channel, builder
from tests.slack_fakes import TEST_BOT_TOKEN

KEY = "slack:T0001:C0DIGEST1"
DUE = datetime(2026, 11, 23, 9, tzinfo=UTC)


@pytest.fixture
def core(slack_api, monkeypatch, fixed_now):
    from digests.service import open_core
    from digests.settings import load_settings

    monkeypatch.setenv("SLACK_BOT_TOKEN", TEST_BOT_TOKEN)
    monkeypatch.setenv("DIGESTBOT_SLACK_API_URL", slack_api.api_url)
    core = open_core(load_settings(), clock=lambda: fixed_now, sync=False)
    add_channel(core, KEY)
    core.cache["rate_limiters"] = {"slack": RateLimiter(None, 0.0)}
    yield core
    catalog_lane(core).close()


def main_posts(slack_api):
    return [c for c in slack_api.of("chat.postMessage") if not c.body.get("thread_ts")]


def metadata_of(call):
    meta = call.body.get("metadata")
    return json.loads(meta) if isinstance(meta, str) else meta


async def test_scheduled_digest_goes_out_once_with_its_id_in_metadata(core, slack_api):
    results = await Deliverer(core, build=builder()).catch_up()
    assert [r.outcome for r in results] == ["posted"]
    (post,) = main_posts(slack_api)
    assert post.body["channel"] == "C0DIGEST1"
    assert metadata_of(post)["event_payload"]["digest_id"] == f"{KEY}|2026-W48"
    assert ledger.get_delivery(core, f"{KEY}|2026-W48").message_ref.startswith("C0DIGEST1:")
    assert await Deliverer(core, build=builder()).catch_up() == []
    assert len(main_posts(slack_api)) == 1


async def test_crash_after_slack_accepted_the_post_is_recovered_from_history(core, slack_api):
    def crash_after_post(point):
        if point == "posted":
            raise SimulatedCrash(point)

    with pytest.raises(SimulatedCrash):
        await Deliverer(core, build=builder(), checkpoint=crash_after_post).deliver(KEY, DUE)
    assert ledger.get_delivery(core, f"{KEY}|2026-W48").status == "pending"

    results = await Deliverer(core, build=builder()).catch_up()
    assert [r.outcome for r in results] == ["recovered"]
    assert slack_api.of("conversations.history")
    assert len(main_posts(slack_api)) == 1
    assert ledger.get_delivery(core, f"{KEY}|2026-W48").status == "done"


async def test_not_in_channel_marks_the_channel_broken(core, slack_api):
    slack_api.script("chat.postMessage", error="not_in_channel")
    results = await Deliverer(core, build=builder()).catch_up()
    assert [r.outcome for r in results] == ["broken"]
    assert get_channel(core, KEY).broken_reason == (
        "the app is not a member of this channel (not_in_channel); invite the app to this channel with /invite")
    assert await Deliverer(core, build=builder()).catch_up() == []


async def test_run_with_a_refused_slack_token_stops_with_the_variable_named(slack_api, monkeypatch, fixed_now):
    from bot.runner import Platforms, Runner
    from digests.errors import ConfigError
    from digests.service import open_core
    from digests.settings import load_settings

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-refused-0000-token")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.setenv("DIGESTBOT_SLACK_API_URL", slack_api.api_url)
    core = open_core(load_settings(), clock=lambda: fixed_now, sync=False)
    runner = Runner(core, Platforms.from_settings(core.settings), say=lambda text: None)
    assert runner.platforms == Platforms(slack=True, discord=False)
    await runner.start(fetch_if_due=False)
    try:
        with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
            await runner.wait()
    finally:
        await runner.stop()


def test_every_permanent_slack_code_has_its_own_fix():
    from bot.deliver import FIX_HINTS
    from bot.slack_poster import PERMANENT_ERRORS

    assert set(PERMANENT_ERRORS) <= set(FIX_HINTS)


@pytest.mark.parametrize("code", ["restricted_action_read_only_channel", "restricted_action_thread_only_channel",
                                  "no_permission", "ekm_access_denied", "team_access_not_granted"])
async def test_newer_permanent_codes_give_a_broken_reason_with_their_fix(core, slack_api, code):
    from bot.deliver import FIX_HINTS
    from bot.slack_poster import PERMANENT_ERRORS

    slack_api.script("chat.postMessage", error=code)
    results = await Deliverer(core, build=builder()).catch_up()
    assert [r.outcome for r in results] == ["broken"]
    assert get_channel(core, KEY).broken_reason == f"{PERMANENT_ERRORS[code]} ({code}); {FIX_HINTS[code]}"
