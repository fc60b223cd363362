"""The delivery ledger: intent before post, ref after, papers on success; every crash point recovers exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.deliver import Deliverer, catalog_lane
from bot.posting import RateLimiter, RecordingPoster, SimulatedCrash
from digests import ledger
from tests.fake_platform import add_channel, builder, make_digest

KEY = "slack:T1:C1"
DUE = datetime(2026, 11, 23, 9, tzinfo=UTC)
DIGEST_ID = f"{KEY}|2026-W48"


@pytest.fixture
def core(fresh_core):
    add_channel(fresh_core, KEY)
    fresh_core.cache["rate_limiters"] = {"slack": RateLimiter(None, 0.0)}
    yield fresh_core
    catalog_lane(fresh_core).close()


def deliverer(core, poster, checkpoint=None, build=None):
    return Deliverer(core, posters=lambda platform: poster, build=build or builder(classic_id=7),
                     checkpoint=checkpoint)


def crash_at(point):
    def checkpoint(name):
        if name == point:
            raise SimulatedCrash(name)

    return checkpoint


def test_digest_json_round_trip():
    digest = make_digest(KEY, classic_id=3)
    assert ledger.digest_from_json(ledger.digest_to_json(digest)) == digest


def test_intent_is_recorded_once_and_failed_reopens(core, fixed_now):
    digest = make_digest(KEY)
    first = ledger.record_intent(core, digest, fixed_now)
    assert (first.status, first.week, first.attempts) == ("pending", "2026-W48", 0)
    ledger.record_attempt(core, digest.id)
    assert ledger.record_intent(core, digest, fixed_now).attempts == 1
    ledger.record_failed(core, digest.id, "channel_not_found")
    assert ledger.get_delivery(core, digest.id).status == "failed"
    assert ledger.record_intent(core, digest, fixed_now).status == "pending"


def test_record_sent_writes_papers_and_classic(core, fixed_now):
    digest = make_digest(KEY, classic_id=7)
    ledger.record_intent(core, digest, fixed_now)
    ledger.record_ref(core, digest.id, "ts-1", fixed_now)
    ledger.record_sent(core, digest.id, fixed_now)
    row = ledger.get_delivery(core, digest.id)
    assert (row.status, row.message_ref) == ("done", "ts-1")
    sent = {r["arxiv_id"]: r["digest_id"] for r in core.db["sent_papers"].rows}
    assert sent == {"2611.00001": digest.id, "2611.00002": digest.id}
    assert [r["paper_id"] for r in core.db["classics_shown"].rows] == [7]


def test_a_classic_shown_again_after_a_full_rotation_gets_its_new_date(core, fixed_now):
    first, again = make_digest(KEY, classic_id=7), make_digest(KEY, week="2026-W52", classic_id=7)
    later = fixed_now + timedelta(weeks=4)
    for digest, when in ((first, fixed_now), (again, later)):
        ledger.record_intent(core, digest, when)
        ledger.record_ref(core, digest.id, f"ts-{digest.week}", when)
        ledger.record_sent(core, digest.id, when)
    rows = list(core.db["classics_shown"].rows)
    assert [(r["paper_id"], r["digest_id"]) for r in rows] == [(7, again.id)]
    assert rows[0]["shown_at"].startswith(later.date().isoformat())


def _assert_delivered_once(core, poster):
    assert poster.posted_ids() == [DIGEST_ID]
    row = ledger.get_delivery(core, DIGEST_ID)
    assert row.status == "done" and row.message_ref == poster.posts[0].ref
    assert core.db["sent_papers"].count == 2
    assert core.db["classics_shown"].count == 1


class CrashingBuild:
    """Dies while building (the process stops before the intent is written)."""

    def __call__(self, core, key, now):
        raise SimulatedCrash("before intent")


@pytest.mark.parametrize(
    "point, needs_find",
    [
        ("before_intent", False),  # no ledger row at all: the restart simply delivers
        ("intent", True),  # intent + attempt written, nothing sent: find_posted -> None -> post
        ("crash_before_post", True),  # the request never left: same
        ("crash_after_post", True),  # platform has it, ref lost: find_posted returns it, nothing re-posted
        ("posted", True),  # post returned but the ref was not written: same as above
        ("ref", True),  # died inside the ref+papers transaction: rolled back, recovered as above
    ],
)
async def test_crash_point_then_restart_delivers_exactly_once(core, point, needs_find):
    poster = RecordingPoster()
    if point in ("crash_before_post", "crash_after_post"):
        poster.will(KEY, point)
        first = deliverer(core, poster)
    elif point == "before_intent":
        first = deliverer(core, poster, build=CrashingBuild())
    else:
        first = deliverer(core, poster, checkpoint=crash_at(point))
    with pytest.raises(SimulatedCrash):
        await first.deliver(KEY, DUE)

    restarted = deliverer(core, poster)
    results = await restarted.catch_up()
    _assert_delivered_once(core, poster)
    assert bool(poster.finds) is needs_find
    expected = "recovered" if point in ("crash_after_post", "posted", "ref") else "posted"
    assert [r.outcome for r in results if r.channel == KEY] == [expected]

    again = await deliverer(core, poster).catch_up()
    assert again == [] and len(poster.posts) == 1


async def test_posted_row_without_papers_is_finished_without_posting(core, fixed_now):
    poster = RecordingPoster()
    digest = builder(classic_id=7)(core, KEY, DUE)
    ledger.begin(core, digest, fixed_now, count_attempt=True)
    ledger.record_ref(core, digest.id, "ts-1", fixed_now)  # ref written, papers not (older two-step writer)
    results = await deliverer(core, poster).recover()
    assert [r.outcome for r in results] == ["recovered"]
    assert poster.calls == [] and poster.finds == []
    row = ledger.get_delivery(core, digest.id)
    assert (row.status, row.message_ref) == ("done", "ts-1")
    assert core.db["sent_papers"].count == 2 and core.db["classics_shown"].count == 1


async def test_stale_intent_is_skipped_not_posted(core, fixed_now):
    poster = RecordingPoster()
    old = fixed_now - timedelta(days=9)
    ledger.record_intent(core, make_digest(KEY, "2026-W46"), old)
    results = await deliverer(core, poster).recover()
    assert [r.outcome for r in results] == ["skipped"]
    assert poster.posts == []
    assert ledger.get_delivery(core, f"{KEY}|2026-W46").status == "skipped"


def test_channel_status_reports_last_digest_next_run_and_fetch(core, fixed_now):
    digest = make_digest(KEY)
    ledger.record_intent(core, digest, fixed_now)
    ledger.record_ref(core, digest.id, "ts-9", fixed_now)
    ledger.record_sent(core, digest.id, fixed_now)
    status = ledger.channel_status(core, KEY, fixed_now)
    assert status["next_run"] == "2026-11-30T09:00:00+00:00"
    assert status["last_digest"] == {"week": "2026-W48", "posted_at": "2026-11-25T12:00:00+00:00", "message_ref": "ts-9"}
    assert status["broken_reason"] is None and status["last_attempt"] is None
    assert status["last_fetch"] is None


def test_channel_status_of_unknown_channel(core, fixed_now):
    status = ledger.channel_status(core, "slack:T1:NOPE", fixed_now)
    assert status["subscribed"] is False and status["next_run"] is None and status["last_digest"] is None
