"""The delivery lease: two live processes on one database never both post or recover the same digest.

Each "process" is a Core opened on the same SQLite file (its own connection, its own claim identity);
time moves through the injected clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.deliver import Deliverer, catalog_lane
from bot.posting import RateLimiter
from digests import ledger
from digests.channels import get_channel
from digests.migrations import migrations
from tests.fake_platform import FakePlatform, HTTPPoster, add_channel, builder

KEY = "slack:T1:C1"
DUE = datetime(2026, 11, 23, 9, tzinfo=UTC)
DIGEST_ID = f"{KEY}|2026-W48"


class Clock:
    """A settable clock shared by a Core and its lanes."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def second_process(core, clock):
    """Open a second Core on `core`'s database file, as another digestbot process would."""
    from digests.service import open_core

    other = open_core(core.settings, clock=clock, sync=False)
    other.cache["rate_limiters"] = {"slack": RateLimiter(None, 0.0)}
    return other


@pytest.fixture
def clock(fixed_now):
    return Clock(fixed_now)


@pytest.fixture
def core(fresh_core, clock):
    add_channel(fresh_core, KEY)
    fresh_core.clock = clock
    fresh_core.cache["rate_limiters"] = {"slack": RateLimiter(None, 0.0)}
    yield fresh_core
    catalog_lane(fresh_core).close()


@pytest.fixture
def other_clock(fixed_now):
    return Clock(fixed_now)


@pytest.fixture
def other(core, other_clock):
    other = second_process(core, other_clock)
    yield other
    catalog_lane(other).close()


def test_a_second_process_cannot_claim_a_row_another_holds(core, other, fixed_now):
    assert ledger.claimer(core) != ledger.claimer(other)
    digest = builder()(core, KEY, DUE)
    row, _, fresh = ledger.begin(core, digest, fixed_now, count_attempt=True)
    assert fresh and ledger.holds(core, row) and row.claimed_until == "2026-11-25T12:10:00+00:00"

    assert ledger.claim(other, digest.id, fixed_now + timedelta(minutes=1)) is False
    seen, _, fresh = ledger.begin(other, digest, fixed_now + timedelta(minutes=1), count_attempt=True)
    assert not fresh and not ledger.holds(other, seen) and seen.claimed_by == ledger.claimer(core)
    ledger.release(other, digest.id)  # not its lease: a no-op
    assert ledger.get_delivery(core, digest.id).claimed_by == ledger.claimer(core)

    assert ledger.claim(core, digest.id, fixed_now + timedelta(minutes=2))  # the holder extends it
    assert ledger.get_delivery(core, digest.id).claimed_until == "2026-11-25T12:12:00+00:00"
    ledger.release(core, digest.id)
    assert ledger.claim(other, digest.id, fixed_now + timedelta(minutes=2))  # released: free at once
    assert ledger.holds(other, ledger.get_delivery(core, digest.id))


def test_an_expired_lease_can_be_taken_over(core, other, fixed_now):
    digest = builder()(core, KEY, DUE)
    ledger.begin(core, digest, fixed_now, count_attempt=True)  # then the holder dies without releasing
    assert ledger.claim(other, digest.id, fixed_now + ledger.LEASE - timedelta(seconds=1)) is False
    assert ledger.claim(other, digest.id, fixed_now + ledger.LEASE + timedelta(seconds=1))
    assert ledger.holds(other, ledger.get_delivery(other, digest.id))
    assert ledger.claim(core, digest.id, fixed_now + ledger.LEASE + timedelta(seconds=2)) is False


def test_closed_rows_are_never_claimed(core, other, fixed_now):
    digest = builder()(core, KEY, DUE)
    ledger.begin(core, digest, fixed_now)
    ledger.record_posted(core, digest, "ts-1", fixed_now)
    ledger.release(core, digest.id)
    assert ledger.claim(other, digest.id, fixed_now) is False
    row, _, fresh = ledger.begin(other, digest, fixed_now)
    assert (row.status, row.claimed_by, fresh) == ("done", None, False)


async def test_deliver_skips_a_digest_leased_elsewhere_then_delivers_it_once_after_expiry(
    core, other, fixed_now, other_clock
):
    digest = builder()(core, KEY, DUE)
    async with FakePlatform() as fake, aiohttp.ClientSession() as session:
        poster = HTTPPoster(fake.url, session)
        # The first process recorded its intent and is about to post (or died right there).
        ledger.begin(core, digest, fixed_now, count_attempt=True)

        second = Deliverer(other, posters=lambda p: poster, build=builder())
        sent = await second.deliver(KEY, DUE, include_broken=True)  # e.g. `digestbot digest send`
        swept = await second.recover()  # e.g. the retry sweep of a `digestbot run`
        assert (sent.outcome, [r.outcome for r in swept]) == ("leased", ["leased"])
        assert ledger.claimer(core) in sent.detail
        assert fake.messages == [] and fake.requests == 0
        row = ledger.get_delivery(other, DIGEST_ID)
        assert (row.status, row.error, row.attempts) == ("pending", None, 1)  # not failed, not counted
        assert get_channel(other, KEY).broken_reason is None

        other_clock.now = fixed_now + ledger.LEASE + timedelta(seconds=1)  # the first process is gone
        [result] = await second.recover()
        assert result.outcome == "posted"
        assert await second.recover() == []
        again = await second.deliver(KEY, DUE, include_broken=True)
        assert again.outcome == "already"

    assert [(c, d) for c, d, _ in fake.messages] == [(KEY, DIGEST_ID)]
    row = ledger.get_delivery(core, DIGEST_ID)
    assert (row.status, row.claimed_by, row.claimed_until) == ("done", None, None)  # released when done


class GatedPoster(HTTPPoster):
    """An HTTPPoster whose posts wait for `go` (a slow platform), so a second process can try meanwhile."""

    def __init__(self, url, session):
        super().__init__(url, session)
        self.started, self.go = asyncio.Event(), asyncio.Event()

    async def post(self, channel_key, digest):
        self.started.set()
        await self.go.wait()
        return await super().post(channel_key, digest)


async def test_two_live_processes_post_one_digest_once(core, other):
    async with FakePlatform() as fake, aiohttp.ClientSession() as session:
        slow = GatedPoster(fake.url, session)
        first = asyncio.create_task(Deliverer(core, posters=lambda p: slow, build=builder()).deliver(KEY, DUE))
        await slow.started.wait()  # intent recorded, post in flight

        second = Deliverer(other, posters=lambda p: HTTPPoster(fake.url, session), build=builder())
        assert (await second.deliver(KEY, DUE, include_broken=True)).outcome == "leased"
        assert [r.outcome for r in await second.recover()] == ["leased"]

        slow.go.set()
        assert (await first).outcome == "posted"
        assert (await second.deliver(KEY, DUE, include_broken=True)).outcome == "already"
    assert fake.duplicates() == 0 and len(fake.messages) == 1


async def test_a_permanent_failure_releases_the_lease(core, other, fixed_now):
    async with FakePlatform(gone={KEY}) as fake, aiohttp.ClientSession() as session:
        poster = HTTPPoster(fake.url, session)
        result = await Deliverer(core, posters=lambda p: poster, build=builder()).deliver(KEY, DUE)
    assert result.outcome == "broken"
    row = ledger.get_delivery(other, DIGEST_ID)
    assert (row.status, row.claimed_by) == ("failed", None)
    reopened, _, fresh = ledger.begin(other, builder()(other, KEY, DUE), fixed_now, count_attempt=True)
    assert fresh and ledger.holds(other, reopened)


def test_lease_migration_applies_to_a_database_made_by_the_previous_schema(tmp_path, fixed_now):
    from sqlite_utils import Database

    from digests.service import Core
    from digests.settings import load_settings
    from digests.store import open_db

    path = tmp_path / "old.db"
    db = Database(path)
    migrations.apply(db, stop_before="m006_delivery_lease")
    assert "claimed_by" not in db["deliveries"].columns_dict
    db.execute(
        "INSERT INTO deliveries (digest_id, channel, week, status, attempts, created_at)"
        " VALUES (?, ?, '2026-W48', 'pending', 1, '2026-11-25T11:00:00+00:00')",
        [DIGEST_ID, KEY],
    )
    db.conn.commit()
    db.close()

    db = open_db(path)
    assert "m006_delivery_lease" in [m.name for m in migrations.applied(db)]
    assert {"claimed_by", "claimed_until"} <= set(db["deliveries"].columns_dict)
    upgraded = Core(settings=load_settings(), db=db, clock=lambda: fixed_now)
    row = ledger.get_delivery(upgraded, DIGEST_ID)
    assert (row.status, row.attempts, row.claimed_by, row.claimed_until) == ("pending", 1, None, None)
    assert ledger.claim(upgraded, DIGEST_ID, fixed_now)  # an old open row is free to claim
    assert ledger.holds(upgraded, ledger.get_delivery(upgraded, DIGEST_ID))


def test_status_says_who_is_delivering_until_the_lease_ends(core, other, fixed_now):
    from bot.cli_run import _status_line
    from bot.digest_cmd import status_lines

    digest = builder()(core, KEY, DUE)
    ledger.begin(core, digest, fixed_now, count_attempt=True)
    status = ledger.channel_status(other, KEY, fixed_now + timedelta(minutes=1))
    assert status["delivering"] == {"by": ledger.claimer(core), "until": "2026-11-25T12:10:00+00:00"}
    host_pid = ledger.claimer(core).rsplit(":", 1)[0]
    assert f"being delivered by {host_pid} until" in _status_line(status)
    assert any(line.startswith("Being delivered now (until") for line in status_lines(status))

    later = ledger.channel_status(other, KEY, fixed_now + ledger.LEASE + timedelta(seconds=1))
    assert later["delivering"] is None  # the holder is gone: nothing claims to be delivering
    assert "being delivered" not in _status_line(later)
    ledger.record_posted(core, digest, "ts-1", fixed_now)
    assert ledger.channel_status(other, KEY, fixed_now)["delivering"] is None  # done rows hold no lease
