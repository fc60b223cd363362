"""Pure schedule functions with explicit `now` (T10), plus a register_jobs smoke test."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from digests import schedule
from digests.errors import ChannelError, ConfigError
from digests.models import Channel, Schedule

ET = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "day, expected",
    [
        (date(2026, 11, 22), True),  # Sunday
        (date(2026, 11, 23), True),  # Monday
        (date(2026, 11, 25), True),  # Wednesday
        (date(2026, 11, 26), False),  # Thanksgiving (Thursday)
        (date(2026, 11, 27), False),  # Friday
        (date(2026, 11, 28), False),  # Saturday
        (date(2026, 12, 24), False),
        (date(2026, 12, 31), False),
        (date(2026, 12, 30), True),
    ],
)
def test_is_announcement_day(day, expected):
    assert schedule.is_announcement_day(day) is expected


@pytest.mark.parametrize(
    "now, expected_et",
    [
        # Wednesday noon UTC -> Wednesday 20:30 ET
        (utc(2026, 11, 25, 12), datetime(2026, 11, 25, 20, 30, tzinfo=ET)),
        # Wednesday 20:31 ET: Thursday is Thanksgiving, Fri/Sat none -> Sunday 20:30 ET
        (datetime(2026, 11, 25, 20, 31, tzinfo=ET), datetime(2026, 11, 29, 20, 30, tzinfo=ET)),
        # exactly at a fetch time -> the next one
        (datetime(2026, 11, 23, 20, 30, tzinfo=ET), datetime(2026, 11, 24, 20, 30, tzinfo=ET)),
        # Friday -> Sunday
        (utc(2026, 11, 6, 12), datetime(2026, 11, 8, 20, 30, tzinfo=ET)),
        # DST ends Sunday 2026-11-01: 20:30 EST is 01:30 UTC next day (EDT would be 00:30)
        (utc(2026, 10, 31, 12), datetime(2026, 11, 1, 20, 30, tzinfo=ET)),
        # Christmas week: 23rd (Wed) is the last before the 27th (Sun)
        (datetime(2026, 12, 23, 21, 0, tzinfo=ET), datetime(2026, 12, 27, 20, 30, tzinfo=ET)),
    ],
)
def test_next_fetch_run(now, expected_et):
    got = schedule.next_fetch_run(now)
    assert got == expected_et
    assert got > now


def test_next_fetch_run_dst_offset():
    got = schedule.next_fetch_run(utc(2026, 10, 31, 12))
    assert got.astimezone(UTC) == utc(2026, 11, 2, 1, 30)


def test_calendar_from_config_adds_and_replaces():
    cal = schedule.load_calendar({"holidays": ["2026-11-25"], "fetch_delay_minutes": 45})
    assert cal.holidays == {date(2026, 11, 25)}
    assert schedule.next_fetch_run(utc(2026, 11, 25, 12), cal) == datetime(2026, 11, 26, 20, 45, tzinfo=ET)
    extra = schedule.load_calendar({"extra_holidays": ["2026-11-29"]})
    assert date(2026, 11, 26) in extra.holidays and date(2026, 11, 29) in extra.holidays


def test_calendar_bad_date_is_config_error():
    with pytest.raises(ConfigError, match="2026-11-26"):
        schedule.load_calendar({"holidays": ["26/11/2026"]})


@pytest.mark.parametrize(
    "sched, now, expected_utc",
    [
        # Monday 09:00 UTC, asked on Wednesday -> next Monday
        (Schedule(0, "09:00", "UTC"), utc(2026, 11, 25, 12), utc(2026, 11, 30, 9)),
        # asked exactly at the run time -> a week later
        (Schedule(0, "09:00", "UTC"), utc(2026, 11, 30, 9), utc(2026, 12, 7, 9)),
        # New York Wednesday 09:00 EST = 14:00 UTC, asked 1 minute before
        (Schedule(2, "09:00", "America/New_York"), utc(2026, 11, 25, 13, 59), utc(2026, 11, 25, 14)),
        # Berlin Friday 17:30 CET = 16:30 UTC
        (Schedule(4, "17:30", "Europe/Berlin"), utc(2026, 11, 25, 12), utc(2026, 11, 27, 16, 30)),
        # New York Monday 09:00 across the autumn change (2026-11-01): 13:00 UTC before, 14:00 after
        (Schedule(0, "09:00", "America/New_York"), utc(2026, 10, 26, 13, 30), utc(2026, 11, 2, 14)),
        (Schedule(0, "09:00", "America/New_York"), utc(2026, 10, 26, 12, 0), utc(2026, 10, 26, 13)),
        # Berlin spring forward 2026-03-29: Sunday 02:30 does not exist -> 03:30 CEST = 01:30 UTC
        (Schedule(6, "02:30", "Europe/Berlin"), utc(2026, 3, 28, 12), utc(2026, 3, 29, 1, 30)),
        # Berlin fall back 2026-10-25: Sunday 02:30 happens twice -> the first (CEST, 00:30 UTC)
        (Schedule(6, "02:30", "Europe/Berlin"), utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30)),
        # a zone ahead of UTC where the local date is already tomorrow
        (Schedule(3, "08:00", "Pacific/Auckland"), utc(2026, 11, 25, 18), utc(2026, 11, 25, 19)),
    ],
)
def test_next_digest_run(sched, now, expected_utc):
    got = schedule.next_digest_run(Channel("console:x", ("rlhf",), sched), now)
    assert got.astimezone(UTC) == expected_utc
    assert got.tzinfo is not None and got > now


def test_next_digest_run_keeps_local_wall_time_across_dst():
    sched = Schedule(0, "09:00", "America/New_York")
    run = schedule.next_digest_run(sched, utc(2026, 10, 20))
    runs = []
    for _ in range(4):
        runs.append(run)
        run = schedule.next_digest_run(sched, run)
    assert [r.astimezone(ET).strftime("%a %H:%M") for r in runs] == ["Mon 09:00"] * 4
    assert [r.astimezone(UTC).hour for r in runs] == [13, 14, 14, 14]


def test_previous_digest_run_and_due_run():
    ch = Channel("console:x", ("rlhf",), Schedule(0, "09:00", "UTC"), created_at="2026-11-01T00:00:00+00:00")
    now = utc(2026, 11, 25, 12)
    assert schedule.previous_digest_run(ch, now) == utc(2026, 11, 23, 9)
    assert schedule.previous_digest_run(ch, utc(2026, 11, 23, 9)) == utc(2026, 11, 23, 9)
    assert schedule.due_run(ch, now) == utc(2026, 11, 23, 9)


def test_due_run_none_for_new_or_paused_channels_but_broken_ones_get_their_one_try():
    now = utc(2026, 11, 25, 12)
    new = Channel("console:x", ("rlhf",), Schedule(0, "09:00", "UTC"), created_at="2026-11-24T00:00:00+00:00")
    assert schedule.due_run(new, now) is None
    paused = Channel("console:x", (), Schedule(0, "09:00", "UTC"))
    assert schedule.due_run(paused, now) is None
    broken = Channel("console:x", ("rlhf",), Schedule(0, "09:00", "UTC"), broken_reason="channel_not_found",
                     created_at="2026-11-01T00:00:00+00:00")
    assert schedule.due_run(broken, now) == utc(2026, 11, 23, 9)  # how a fixed channel is noticed


def test_missed_runs_counts_the_ones_skipped():
    sched = Schedule(0, "09:00", "UTC")
    # last delivered 2026-11-02; runs on 9, 16, 23 Nov missed -> 23rd is sent, 2 are skipped
    assert schedule.missed_runs(sched, utc(2026, 11, 2, 9), utc(2026, 11, 25, 12)) == 2
    assert schedule.missed_runs(sched, utc(2026, 11, 16, 9), utc(2026, 11, 25, 12)) == 0


@pytest.mark.parametrize("sched", [Schedule(0, "09:00", "Mars/Olympus"), Schedule(0, "9am", "UTC")])
def test_bad_schedule_is_channel_error(sched):
    with pytest.raises(ChannelError):
        schedule.next_digest_run(sched, utc(2026, 11, 25))


def _channel_rows(core, channels):
    for ch in channels:
        core.db["channels"].insert(
            {
                "key": ch.key, "themes_json": f'{list(ch.themes)!r}'.replace("'", '"'), "weekday": ch.schedule.weekday,
                "time": ch.schedule.time, "tz": ch.schedule.tz, "broken_reason": ch.broken_reason,
                "source": "cli", "created_at": "2026-11-01T00:00:00+00:00", "modified_at": "2026-11-01T00:00:00+00:00",
            }
        )


async def _noop(*args):
    return None


def test_register_jobs_adds_expected_ids(fresh_core, fixed_now):
    from digests import channels

    if not hasattr(channels, "list_channels"):
        pytest.skip("digests.channels.list_channels has not landed yet")
    _channel_rows(
        fresh_core,
        [
            Channel("slack:T1:C1", ("rlhf",), Schedule(0, "09:00", "Europe/Berlin")),
            Channel("discord:1:2", ("oversight",), Schedule(4, "17:00", "America/New_York")),
            Channel("console:paused", (), Schedule()),
            Channel("console:broken", ("rlhf",), Schedule(), broken_reason="channel_not_found"),
        ],
    )
    scheduler = AsyncIOScheduler(timezone=UTC)
    refresh = schedule.register_jobs(scheduler, fresh_core, on_fetch=_noop, on_digest=_noop)
    ids = sorted(job.id for job in scheduler.get_jobs())
    assert ids == ["digest:console:broken", "digest:discord:1:2", "digest:slack:T1:C1", "fetch"]
    job = scheduler.get_job("digest:slack:T1:C1")
    assert job.coalesce is True and job.max_instances == 1
    assert job.trigger.get_next_fire_time(None, fixed_now) == utc(2026, 11, 30, 8)
    assert refresh() == {"added": 0, "removed": 0, "jobs": 3}

    fresh_core.db["channels"].update("slack:T1:C1", {"weekday": 1})
    fresh_core.db["channels"].delete("discord:1:2")
    schedule.notify_channels_changed(fresh_core)
    assert sorted(job.id for job in scheduler.get_jobs()) == ["digest:console:broken", "digest:slack:T1:C1", "fetch"]
    assert scheduler.get_job("digest:slack:T1:C1").trigger.schedule.weekday == 1


def test_notify_without_scheduler_is_noop(fresh_core):
    schedule.notify_channels_changed(fresh_core)


@pytest.mark.parametrize(
    "now, expected_et",
    [
        (utc(2026, 11, 25, 12), datetime(2026, 11, 24, 20, 30, tzinfo=ET)),
        (datetime(2026, 11, 25, 20, 30, tzinfo=ET), datetime(2026, 11, 25, 20, 30, tzinfo=ET)),
        # Saturday after Thanksgiving: the last fetch was Wednesday evening
        (utc(2026, 11, 28, 12), datetime(2026, 11, 25, 20, 30, tzinfo=ET)),
    ],
)
def test_previous_fetch_run(now, expected_et):
    assert schedule.previous_fetch_run(now) == expected_et
