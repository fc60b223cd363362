"""Scheduled delivery end to end (T11): due digests -> RecordingPoster -> ledger; 429s, broken channels, catch-up."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from bot.deliver import Deliverer, catalog_lane, due_runs, on_catalog
from bot.posting import (
    ConsolePoster,
    RateLimiter,
    RecordingPoster,
    get_poster,
    permanent_failure,
    rate_limited,
    register_poster,
)
from digests import ledger
from digests.channels import get_channel
from digests.errors import ConfigError
from tests.fake_platform import add_channel, builder

A, B, C = "slack:T1:CA", "slack:T1:CB", "discord:1:3"
DUE = datetime(2026, 11, 23, 9, tzinfo=UTC)


class FakeSleep:
    """Records requested sleeps instead of waiting."""

    def __init__(self):
        self.calls = []

    async def __call__(self, seconds):
        self.calls.append(round(seconds, 3))


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def sleep():
    return FakeSleep()


@pytest.fixture
def core(fresh_core, sleep):
    for key in (A, B, C):
        add_channel(fresh_core, key)
    fresh_core.cache["rate_limiters"] = {p: RateLimiter(None, 1.0, sleep=sleep) for p in ("slack", "discord")}
    yield fresh_core
    catalog_lane(fresh_core).close()


def make(core, poster, sleep, **kw):
    return Deliverer(core, posters=lambda platform: poster, build=builder(), sleep=sleep, **kw)


async def test_due_digests_posted_once_second_run_posts_nothing(core, sleep):
    poster = RecordingPoster()
    results = await make(core, poster, sleep).catch_up()
    assert sorted(r.outcome for r in results) == ["posted"] * 3
    assert sorted(poster.posted_ids()) == sorted(f"{k}|2026-W48" for k in (A, B, C))
    assert {r["status"] for r in core.db["deliveries"].rows} == {"done"}
    assert core.db["sent_papers"].count == 6

    assert await make(core, poster, sleep).catch_up() == []
    again = await make(core, poster, sleep).deliver(A, DUE)
    assert again.outcome == "already" and len(poster.posts) == 3


async def test_429_waits_retry_after_and_posts(core, sleep):
    poster = RecordingPoster().will(A, rate_limited(A, 2.5), rate_limited(A, 1.0))
    result = await make(core, poster, sleep).deliver(A, DUE)
    assert result.outcome == "posted"
    assert poster.calls == [(A, f"{A}|2026-W48")] * 3
    assert 2.5 in sleep.calls and 1.0 in sleep.calls
    assert ledger.get_delivery(core, f"{A}|2026-W48").attempts == 3


async def test_long_retry_after_is_kept_for_later_not_dropped(core, sleep, fixed_now):
    poster = RecordingPoster().will(A, rate_limited(A, 3600))
    result = await make(core, poster, sleep, max_inline_wait=60).deliver(A, DUE)
    assert result.outcome == "retry"
    row = ledger.get_delivery(core, f"{A}|2026-W48")
    assert row.status == "pending" and row.retry_at == "2026-11-25T13:00:00+00:00"
    assert await make(core, poster, sleep).recover() == []  # not yet due

    core.clock = lambda: datetime(2026, 11, 25, 13, 1, tzinfo=UTC)
    results = await make(core, poster, sleep).recover()
    assert [r.outcome for r in results] == ["posted"]
    assert poster.finds == [(A, f"{A}|2026-W48")]  # asked first: an earlier attempt might have landed
    assert poster.posted_ids(A) == [f"{A}|2026-W48"]


async def test_permanent_error_marks_broken_and_others_go_on(core, sleep):
    poster = RecordingPoster().will(B, permanent_failure(B, "channel_not_found"))
    results = {r.channel: r.outcome for r in await make(core, poster, sleep).catch_up()}
    assert results == {A: "posted", B: "broken", C: "posted"}
    reason = get_channel(core, B).broken_reason
    assert reason == ("the platform refused to post here (channel_not_found); "
                      "check the channel still exists and the app can see it, or unsubscribe it")
    assert ledger.get_delivery(core, f"{B}|2026-W48").status == "failed"

    skipped = await make(core, poster, sleep).deliver(B, DUE)
    assert skipped.outcome == "broken" and len(poster.calls) == 3
    assert ledger.channel_status(core, B, core.clock())["broken_reason"] == reason
    assert await make(core, poster, sleep).catch_up() == []  # no retries of a broken channel in between

    fixed = await make(core, poster, sleep).deliver(B, DUE, include_broken=True)
    assert fixed.outcome == "posted" and get_channel(core, B).broken_reason is None


async def test_build_failure_is_told_to_the_channel(core, sleep, caplog):
    def broken_build(core, key, now):
        raise RuntimeError("catalog exploded")

    poster = RecordingPoster()
    deliverer = Deliverer(core, posters=lambda p: poster, build=broken_build, sleep=sleep)
    with caplog.at_level(logging.ERROR):
        result = await deliverer.deliver(A, DUE)
    assert result.outcome == "failed" and "catalog exploded" in result.detail
    assert [p.digest.status for p in poster.posts] == ["source_error"]
    assert "could not be built" in poster.posts[0].digest.empty_note
    assert "catalog exploded" in caplog.text
    row = ledger.get_delivery(core, f"{A}|2026-W48")  # recorded, so `digestbot status` can show it
    assert (row.status, row.attempts, row.error) == ("failed", 0, "build failed: RuntimeError: catalog exploded")
    assert ledger.channel_status(core, A, core.clock())["last_attempt"]["error"] == row.error

    fixed = await make(core, poster, sleep).catch_up()  # a restart tries the failed build again
    assert {r.channel: r.outcome for r in fixed}[A] == "posted"
    assert ledger.get_delivery(core, f"{A}|2026-W48").status == "done"


async def test_catch_up_after_weeks_down_sends_latest_once_and_logs_skipped(fresh_core, sleep, caplog):
    add_channel(fresh_core, A, created_at="2026-10-01T00:00:00+00:00")
    fresh_core.cache["rate_limiters"] = {"slack": RateLimiter(None, 1.0, sleep=sleep)}
    poster = RecordingPoster()
    with caplog.at_level(logging.WARNING):
        await make(fresh_core, poster, sleep).catch_up()
    catalog_lane(fresh_core).close()
    assert poster.posted_ids() == [f"{A}|2026-W48"]
    assert "skipping 7 digest(s) more than a week late" in caplog.text


def test_new_channel_is_not_due_until_its_first_run(fresh_core, fixed_now):
    add_channel(fresh_core, A, created_at="2026-11-24T00:00:00+00:00")
    add_channel(fresh_core, B, created_at="2026-11-01T00:00:00+00:00", themes=())
    assert due_runs(fresh_core, fixed_now) == []


async def test_rate_limiter_paces_per_channel_and_globally():
    clock, waits = FakeClock(), []

    async def sleep(seconds):
        waits.append(round(seconds, 3))
        clock.t += seconds

    limiter = RateLimiter(rate=4, channel_interval=1.0, clock=clock, sleep=sleep)
    for key in ("a", "b", "c", "a"):
        await limiter.acquire(key)
    # after idling, at most one interval is made up (a and b go together); c waits for the global
    # slot; a's second message waits out its channel's second
    assert waits == [0.25, 0.75]
    limiter.pause(5, "b")
    await limiter.acquire("b")
    assert waits[-1] == 5.0


async def test_registry_console_and_missing_token(fresh_core, capsys):
    poster = get_poster("console", fresh_core)
    assert isinstance(poster, ConsolePoster) and get_poster("console", fresh_core) is poster
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        get_poster("slack", fresh_core)
    recording = RecordingPoster(platform="matrix")
    previous = register_poster("matrix", lambda core: recording)
    try:
        assert get_poster("matrix", fresh_core) is recording
    finally:
        register_poster("matrix", previous)


async def test_console_poster_prints_rendered_text(capsys):
    from tests.fake_platform import make_digest

    ref = await ConsolePoster().post("console:demo", make_digest("console:demo"))
    out = capsys.readouterr().out
    assert ref == "console:demo#1"
    assert "console:demo|2026-W48" in out and "Paper 2611.00001" in out


async def test_catalog_work_runs_on_the_lane_thread(core, sleep):
    import threading

    threads = set()
    build = builder()

    def build_on_lane(lane_core, key, now):
        threads.add(threading.current_thread().name)
        assert lane_core.db is not core.db  # the lane has its own connection
        return build(lane_core, key, now)

    poster = RecordingPoster()
    deliverer = Deliverer(core, posters=lambda p: poster, build=build_on_lane, sleep=sleep)
    assert (await deliverer.deliver(A, DUE)).outcome == "posted"
    assert await on_catalog(core, lambda c: c.db["deliveries"].count) == 1
    assert threads and all(name.startswith("catalog-lane") for name in threads)


async def test_platform_without_token_waits_and_records_nothing(core, sleep):
    deliverer = Deliverer(core, build=builder(), sleep=sleep)
    results = {r.channel: r for r in await deliverer.catch_up()}
    assert results[A].outcome == "unavailable" and "SLACK_BOT_TOKEN" in results[A].detail
    assert results[C].outcome == "unavailable" and "DISCORD_TOKEN" in results[C].detail
    assert core.db["deliveries"].count == 0


async def test_sweep_during_a_429_wait_does_not_post_twice(core):
    import asyncio

    waiting, release = asyncio.Event(), asyncio.Event()

    async def slow_sleep(seconds):
        waiting.set()
        await release.wait()

    poster = RecordingPoster().will(A, rate_limited(A, 30))
    deliverer = Deliverer(core, posters=lambda p: poster, build=builder(), sleep=slow_sleep)
    first = asyncio.create_task(deliverer.deliver(A, DUE))
    await waiting.wait()  # the first delivery is waiting out its Retry-After, intent open
    swept = await deliverer.recover()
    assert [r.outcome for r in swept] == ["busy"]
    again = await deliverer.deliver(A, DUE)
    assert again.outcome == "busy"
    release.set()
    assert (await first).outcome == "posted"
    assert poster.posted_ids() == [f"{A}|2026-W48"]


@pytest.fixture
def registered_recording_poster():
    """Register a RecordingPoster for slack and discord in the registry the real posters use (T11)."""
    poster = RecordingPoster()
    previous = {p: register_poster(p, lambda core: poster) for p in ("slack", "discord")}
    yield poster
    for platform, factory in previous.items():
        register_poster(platform, factory)


async def test_registry_poster_gets_due_digests_once(core, sleep, registered_recording_poster):
    results = await Deliverer(core, build=builder(), sleep=sleep).catch_up()
    assert sorted(r.outcome for r in results) == ["posted"] * 3
    assert len(registered_recording_poster.posts) == 3
    assert await Deliverer(core, build=builder(), sleep=sleep).catch_up() == []
    assert len(registered_recording_poster.posts) == 3
