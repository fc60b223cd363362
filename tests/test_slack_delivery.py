"""The ledger's Deliverer driving the real SlackPoster against the fake Web API: crash points, broken channels."""

from __future__ import annotations

import dataclasses
import json

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.deliver import Deliverer
from bot.posting import RateLimiter, SimulatedCrash
from bot.slack_app import close_lanes
from bot.slack_poster import SlackPoster
from digests import ledger
from digests.channels import get_channel, subscribe
from tests.slack_fakes import TEST_BOT_TOKEN
from tests.test_slack_poster import make_digest

KEY = "slack:T0001:C0DIGEST1"


@pytest.fixture
def core(fresh_core, fixed_now):
    subscribe(fresh_core, KEY, [fresh_core.theme_names[0]])
    fresh_core.cache["rate_limiters"] = {"slack": RateLimiter(None, 0.0)}
    yield fresh_core
    close_lanes(fresh_core)


def deliverer(core, slack_api, checkpoint=None) -> Deliverer:
    """Return a Deliverer whose Slack poster is a fresh SlackPoster, as after a process start."""
    poster = SlackPoster(core, AsyncWebClient(token=TEST_BOT_TOKEN, base_url=slack_api.api_url, retry_handlers=[]))
    digest = dataclasses.replace(make_digest(), id=f"{KEY}|2026-W48", channel=KEY)
    return Deliverer(core, posters=lambda platform: poster, build=lambda c, key, now: digest, checkpoint=checkpoint)


def crash_at(point: str):
    def checkpoint(name: str) -> None:
        if name == point:
            raise SimulatedCrash(name)

    return checkpoint


async def test_crash_after_post_before_ref_recovers_without_second_post(core, slack_api, fixed_now):
    """Intent recorded, post done, ref lost -> restart -> find_posted finds it -> no second post."""
    with pytest.raises(SimulatedCrash):
        await deliverer(core, slack_api, crash_at("posted")).deliver(KEY, fixed_now)
    assert len(slack_api.of("chat.postMessage")) == 1
    assert ledger.get_delivery(core, f"{KEY}|2026-W48").message_ref is None

    [result] = await deliverer(core, slack_api).recover()

    assert result.outcome == "recovered"
    assert len(slack_api.of("chat.postMessage")) == 1
    [history] = slack_api.of("conversations.history")
    assert history.body["channel"] == "C0DIGEST1"
    row = ledger.get_delivery(core, f"{KEY}|2026-W48")
    assert row.status == "done" and row.message_ref == f"C0DIGEST1:{slack_api.history['C0DIGEST1'][0]['ts']}"


async def test_crash_before_post_posts_exactly_once_on_restart(core, slack_api, fixed_now):
    with pytest.raises(SimulatedCrash):
        await deliverer(core, slack_api, crash_at("intent")).deliver(KEY, fixed_now)
    assert slack_api.of("chat.postMessage") == []
    [result] = await deliverer(core, slack_api).recover()
    assert result.outcome == "posted" and len(slack_api.of("chat.postMessage")) == 1
    again = await deliverer(core, slack_api).deliver(KEY, fixed_now)
    assert again.outcome == "already" and len(slack_api.of("chat.postMessage")) == 1


@pytest.mark.parametrize("code", ["not_in_channel", "channel_not_found", "is_archived", "invalid_auth"])
async def test_permanent_error_marks_the_channel_broken(core, slack_api, fixed_now, code):
    slack_api.script("chat.postMessage", error=code)
    result = await deliverer(core, slack_api).deliver(KEY, fixed_now)
    assert result.outcome == "broken"
    assert code in (get_channel(core, KEY).broken_reason or "")
    assert len(slack_api.of("chat.postMessage")) == 1


async def test_429_is_retried_after_retry_after(core, slack_api, fixed_now):
    slack_api.script("chat.postMessage", status=429, retry_after=0)
    result = await deliverer(core, slack_api).deliver(KEY, fixed_now)
    assert result.outcome == "posted"
    assert [c.status for c in slack_api.of("chat.postMessage")] == [429, 200]
    assert len(slack_api.history["C0DIGEST1"]) == 1
    assert json.dumps(slack_api.of("chat.postMessage")[1].body["metadata"]).count("2026-W48") == 1
