"""SlackPoster against a loopback fake Slack Web API: bodies, overflow threads, errors, exactly-once."""

from __future__ import annotations

import json

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_poster import METADATA_EVENT_TYPE, SlackPoster, delivery_error, make_slack_poster, slack_channel_id
from digests.errors import ConfigError, DeliveryError
from digests.models import Coverage, Digest, DigestItem, Paper
from tests.slack_fakes import TEST_BOT_TOKEN, realdata

KEY = "slack:T0001:C0DIGEST1"
SLACK_MAX_BLOCKS = 50
SLACK_SECTION_TEXT_MAX = 3000


def make_digest(n_items: int = 3, abstract_chars: int = 200, title: str = "Reward models") -> Digest:
    """Return a hand-built digest with `n_items` papers (long abstracts force thread replies)."""
    items = tuple(
        DigestItem(
            paper=Paper(
                title=f"{title} {i} <!channel> @everyone <https://evil.example|click>",
                abstract=("Long abstract text. " * (abstract_chars // 20 + 1))[:abstract_chars],
                authors=("A. Author", "B. Author", "C. Author", "D. Author"),
                arxiv_id=f"2611.{10000 + i}",
                version=1,
                origin="arxiv",
                announced="2026-11-24",
            ),
            themes=("rlhf",),
            score=0.9 - i / 1000,
            why=("Training language models to follow instructions with human feedback",),
        )
        for i in range(n_items)
    )
    coverage = Coverage(status="ok", text="Scanned 1,204 cs.CL/cs.LG papers from arXiv, Nov 16-22.")
    return Digest(
        id=f"{KEY}|2026-W48", channel=KEY, week="2026-W48", title="RLHF digest, week 48", themes=("rlhf",),
        items=items, coverage=coverage, generated_at="2026-11-25T12:00:00+00:00",
    )


@pytest.fixture
def poster(fresh_core, slack_api):
    from bot.posting import RateLimiter

    # No pacing in these tests; pacing itself is tested with a fake clock below.
    fresh_core.cache["rate_limiters"] = {"slack": RateLimiter(None, 0.0)}
    client = AsyncWebClient(token=TEST_BOT_TOKEN, base_url=slack_api.api_url, retry_handlers=[])
    return SlackPoster(fresh_core, client=client)


async def test_post_sends_blocks_fallback_metadata_and_no_unfurls(poster, slack_api):
    ref = await poster.post(KEY, make_digest())
    [call] = slack_api.of("chat.postMessage")
    body = call.body
    assert ref == f"C0DIGEST1:{slack_api.history['C0DIGEST1'][0]['ts']}"
    assert body["channel"] == "C0DIGEST1"
    assert body["text"] and body["blocks"]
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    assert body["metadata"] == {"event_type": METADATA_EVENT_TYPE, "event_payload": {"digest_id": f"{KEY}|2026-W48"}}
    assert "thread_ts" not in body


async def test_post_escapes_broadcasts_and_links(poster, slack_api):
    await poster.post(KEY, make_digest())
    raw = json.dumps(slack_api.of("chat.postMessage")[0].body)
    assert "<!channel>" not in raw
    assert "<https://evil.example|click>" not in raw
    assert "<!everyone>" not in raw


async def test_post_overflow_goes_to_thread_replies_within_limits(poster, slack_api):
    ref = await poster.post(KEY, make_digest(n_items=40, abstract_chars=2500))
    calls = slack_api.of("chat.postMessage")
    assert len(calls) >= 2
    main_ts = ref.split(":", 1)[1]
    assert all(c.body.get("thread_ts") == main_ts for c in calls[1:])
    for call in calls:
        blocks = call.body["blocks"]
        assert len(blocks) <= SLACK_MAX_BLOCKS
        for block in blocks:
            text = (block.get("text") or {}).get("text", "")
            assert len(text) <= SLACK_SECTION_TEXT_MAX
    assert len(slack_api.history["C0DIGEST1"]) == 1  # replies are not top-level messages


@pytest.mark.parametrize(
    "code", ["not_in_channel", "channel_not_found", "is_archived", "invalid_auth", "account_inactive",
             "token_revoked", "missing_scope"],
)
async def test_post_permanent_errors_raise_permanent_delivery_error(poster, slack_api, code):
    slack_api.script("chat.postMessage", error=code)
    with pytest.raises(DeliveryError) as info:
        await poster.post(KEY, make_digest())
    err = info.value
    assert err.permanent is True and err.code == code and err.channel == KEY and err.retry_after is None
    assert TEST_BOT_TOKEN not in str(err)


async def test_post_real_error_bodies_are_classified(poster, slack_api):
    for name, code in [("slack_real_webapi_not_in_channel_body_2021.json", "not_in_channel"),
                       ("slack_real_webapi_channel_not_found_body_2024.json", "channel_not_found")]:
        slack_api.script("chat.postMessage", error=json.loads(realdata(name))["error"])
        with pytest.raises(DeliveryError) as info:
            await poster.post(KEY, make_digest())
        assert info.value.code == code and info.value.permanent


async def test_post_429_gives_retry_after(poster, slack_api):
    recorded = json.loads(realdata("slack_real_webapi_429_ratelimited_2018.json"))
    slack_api.script("chat.postMessage", status=429, retry_after=int(recorded["headers"]["retry-after"]) + 29)
    with pytest.raises(DeliveryError) as info:
        await poster.post(KEY, make_digest())
    assert info.value.permanent is False and info.value.retry_after == 30.0 and info.value.code == "ratelimited"
    assert len(slack_api.of("chat.postMessage")) == 1  # slack_sdk did not retry on its own


async def test_post_unknown_error_is_retryable(poster, slack_api):
    slack_api.script("chat.postMessage", error="internal_error")
    with pytest.raises(DeliveryError) as info:
        await poster.post(KEY, make_digest())
    assert info.value.permanent is False and info.value.code == "internal_error"


async def test_post_connection_refused_is_retryable(fresh_core):
    client = AsyncWebClient(token=TEST_BOT_TOKEN, base_url="http://127.0.0.1:9/api/", retry_handlers=[])
    with pytest.raises(DeliveryError) as info:
        await SlackPoster(fresh_core, client=client).post(KEY, make_digest())
    assert info.value.permanent is False and info.value.code == "connection_error"


async def test_thread_reply_429_is_retried_in_place_without_reposting_main(poster, slack_api):
    digest = make_digest(n_items=40, abstract_chars=2500)
    slack_api.script("chat.postMessage", status=429, retry_after=0, after=1)
    await poster.post(KEY, digest)
    calls = slack_api.of("chat.postMessage")
    assert [c.status for c in calls[:3]] == [200, 429, 200]
    assert len(slack_api.history["C0DIGEST1"]) == 1
    parts = [c.body["metadata"]["event_payload"].get("part", 0) for c in calls if c.status == 200]
    assert parts == list(range(len(parts))) and len(parts) >= 2


async def test_thread_replies_are_paced_per_channel(fresh_core, slack_api):
    from bot.posting import RateLimiter

    waits: list[float] = []
    now = [0.0]

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(None, 1.0, clock=lambda: now[0], sleep=fake_sleep)
    fresh_core.cache["rate_limiters"] = {"slack": limiter}
    client = AsyncWebClient(token=TEST_BOT_TOKEN, base_url=slack_api.api_url, retry_handlers=[])
    await limiter.acquire(KEY)  # what the ledger's fan-out does before calling post()
    await SlackPoster(fresh_core, client).post(KEY, make_digest(n_items=40, abstract_chars=2500))
    replies = len(slack_api.of("chat.postMessage")) - 1
    assert replies >= 1 and waits == [1.0] * replies


async def test_find_posted_after_lost_ref_prevents_second_post(fresh_core, slack_api):
    """Crash point: the post reached Slack, the ref was never recorded; a new process must not repost."""
    digest = make_digest()
    first = SlackPoster(fresh_core, AsyncWebClient(token=TEST_BOT_TOKEN, base_url=slack_api.api_url))
    ref = await first.post(KEY, digest)  # ... and the process "dies" before the ledger stores `ref`
    restarted = SlackPoster(fresh_core, AsyncWebClient(token=TEST_BOT_TOKEN, base_url=slack_api.api_url))
    assert await restarted.find_posted(KEY, digest.id) == ref
    [history_call] = slack_api.of("conversations.history")
    assert history_call.body["include_all_metadata"] in ("1", "true", "True")
    assert await restarted.find_posted(KEY, f"{KEY}|2026-W49") is None
    assert len(slack_api.of("chat.postMessage")) == 1


async def test_find_posted_errors_are_delivery_errors(poster, slack_api):
    slack_api.script("conversations.history", error="missing_scope")
    with pytest.raises(DeliveryError) as info:
        await poster.find_posted(KEY, "x")
    assert info.value.permanent and info.value.code == "missing_scope"


def test_slack_channel_id_rejects_foreign_keys():
    assert slack_channel_id(KEY) == "C0DIGEST1"
    with pytest.raises(DeliveryError):
        slack_channel_id("discord:1:2")


def test_make_slack_poster_needs_token(fresh_core):
    with pytest.raises(ConfigError) as info:
        make_slack_poster(fresh_core)
    assert "SLACK_BOT_TOKEN" in str(info.value)


def test_delivery_error_never_carries_token():
    err = delivery_error(KEY, OSError(f"boom {TEST_BOT_TOKEN}"))
    assert TEST_BOT_TOKEN not in str(err) and err.code == "connection_error"
