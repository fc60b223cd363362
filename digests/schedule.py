"""When things happen: arXiv's announcement calendar, each channel's digest time, and the scheduler jobs.

The functions at the top are pure (`now` is passed in, tz-aware). `register_jobs` wires them into an
APScheduler 3.x scheduler through two small triggers, so the jobs fire exactly when the tested
functions say they should, including across daylight-saving changes.

arXiv announces new submissions at 20:00 US Eastern, Sunday to Thursday, and not on the holidays
listed at https://info.arxiv.org/help/availability.html . The default holiday list below is our
reading of that page for 2026/27; verify it each year and override it in the config file:

    [schedule]
    holidays = ["2026-11-26", "2026-12-24"]   # replaces the built-in list
    extra_holidays = ["2027-05-31"]            # or adds to it
    fetch_delay_minutes = 30                   # fetch this long after 20:00 ET
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger

from .errors import ChannelError, ConfigError
from .models import Channel, Schedule

if TYPE_CHECKING:
    from .service import Core

log = logging.getLogger(__name__)

ARXIV_TZ = ZoneInfo("America/New_York")
ANNOUNCE_AT = time(20, 0)
"""arXiv's daily announcement time, US Eastern (https://info.arxiv.org/help/availability.html)."""
ANNOUNCE_WEEKDAYS = frozenset({6, 0, 1, 2, 3})
"""Sunday to Thursday (Python weekday numbers); nothing is announced on Friday or Saturday evenings."""
FETCH_DELAY = timedelta(minutes=30)
MAX_LATE = timedelta(days=7)
"""A digest more than this late is skipped (with a log line), never sent."""

ARXIV_HOLIDAYS: frozenset[date] = frozenset(
    date.fromisoformat(d)
    for d in (
        "2026-01-01",  # New Year's Day
        "2026-06-19",  # Juneteenth (a Friday: no announcement anyway)
        "2026-11-26",  # Thanksgiving
        "2026-12-24",  # Christmas Eve
        "2026-12-25",  # Christmas Day
        "2026-12-31",  # New Year's Eve
        "2027-01-01",  # New Year's Day
    )
)
"""ET dates whose 20:00 announcement arXiv skips (our reading of its 2026 schedule; configurable)."""


@dataclass(frozen=True)
class Calendar:
    """The announcement calendar in force: holidays and how long after 20:00 ET to fetch."""

    holidays: frozenset[date] = ARXIV_HOLIDAYS
    fetch_delay: timedelta = FETCH_DELAY


def load_calendar(section: Any) -> Calendar:
    """Return the Calendar described by the config file's `[schedule]` table (or the defaults)."""
    section = section or {}
    try:
        holidays = frozenset(date.fromisoformat(str(d)) for d in section.get("holidays", ARXIV_HOLIDAYS))
        holidays |= {date.fromisoformat(str(d)) for d in section.get("extra_holidays", ())}
        delay = timedelta(minutes=float(section.get("fetch_delay_minutes", FETCH_DELAY.total_seconds() / 60)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"[schedule] in the config file is invalid ({exc}); dates look like 2026-11-26", variable="schedule"
        ) from None
    return Calendar(holidays=holidays, fetch_delay=delay)


def is_announcement_day(d: date, holidays: Iterable[date] = ARXIV_HOLIDAYS) -> bool:
    """Return True when arXiv announces new papers at 20:00 ET on the (ET) date `d`."""
    return d.weekday() in ANNOUNCE_WEEKDAYS and d not in holidays


def announcement_at(d: date) -> datetime:
    """Return the instant of the 20:00 ET announcement on ET date `d` (whether or not one happens)."""
    return datetime.combine(d, ANNOUNCE_AT, tzinfo=ARXIV_TZ)


def next_fetch_run(now: datetime, calendar: Calendar = Calendar()) -> datetime:
    """Return the first fetch time after `now`: `calendar.fetch_delay` after an arXiv announcement."""
    day = now.astimezone(ARXIV_TZ).date() - timedelta(days=1)
    for _ in range(60):
        if is_announcement_day(day, calendar.holidays):
            at = announcement_at(day) + calendar.fetch_delay
            if at > now:
                return at
        day += timedelta(days=1)
    raise ConfigError("no arXiv announcement in the next 60 days; check [schedule] holidays", variable="schedule")


def previous_fetch_run(now: datetime, calendar: Calendar = Calendar()) -> datetime:
    """Return the latest fetch time at or before `now` (so a fetch is due if none ran since)."""
    day = now.astimezone(ARXIV_TZ).date() + timedelta(days=1)
    for _ in range(60):
        if is_announcement_day(day, calendar.holidays):
            at = announcement_at(day) + calendar.fetch_delay
            if at <= now:
                return at
        day -= timedelta(days=1)
    raise ConfigError("no arXiv announcement in the last 60 days; check [schedule] holidays", variable="schedule")


def _schedule_of(channel: Channel | Schedule) -> Schedule:
    return channel.schedule if isinstance(channel, Channel) else channel


def _zone(schedule: Schedule) -> ZoneInfo:
    try:
        return ZoneInfo(schedule.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ChannelError(
            f"Unknown time zone {schedule.tz!r}; use an IANA name such as Europe/Berlin", channel=None
        ) from None


def _local_time(schedule: Schedule) -> time:
    try:
        return time.fromisoformat(schedule.time)
    except ValueError:
        raise ChannelError(f"Invalid time {schedule.time!r}; use HH:MM, e.g. 09:00", channel=None) from None


def _run_on(d: date, at: time, zone: ZoneInfo) -> datetime:
    # A wall time skipped by a spring-forward change (02:30 on the DST day) moves forward by the gap;
    # a repeated one (autumn) means its first occurrence. The UTC round trip does both.
    return datetime.combine(d, at, tzinfo=zone).astimezone(UTC).astimezone(zone)


def next_digest_run(channel: Channel | Schedule, now: datetime) -> datetime:
    """Return the channel's first digest time strictly after `now` (its weekday and local time in its zone)."""
    schedule = _schedule_of(channel)
    zone, at = _zone(schedule), _local_time(schedule)
    day = now.astimezone(zone).date() - timedelta(days=1)
    for _ in range(16):
        if day.weekday() == schedule.weekday:
            run = _run_on(day, at, zone)
            if run > now:
                return run
        day += timedelta(days=1)
    raise ChannelError(f"Invalid weekday {schedule.weekday!r}; use 0 (Monday) to 6 (Sunday)", channel=None)


def previous_digest_run(channel: Channel | Schedule, now: datetime) -> datetime:
    """Return the channel's latest digest time at or before `now`."""
    schedule = _schedule_of(channel)
    zone, at = _zone(schedule), _local_time(schedule)
    day = now.astimezone(zone).date() + timedelta(days=1)
    for _ in range(16):
        if day.weekday() == schedule.weekday:
            run = _run_on(day, at, zone)
            if run <= now:
                return run
        day -= timedelta(days=1)
    raise ChannelError(f"Invalid weekday {schedule.weekday!r}; use 0 (Monday) to 6 (Sunday)", channel=None)


def due_run(channel: Channel, now: datetime) -> datetime | None:
    """Return the scheduled run a catch-up at `now` should deliver, or None.

    Only the latest scheduled run counts: runs missed while the bot was down coalesce into it, and
    older ones (more than a week late) are never sent. A run before the channel was created is not
    due either, so a new subscription starts with its next scheduled digest. A broken channel is
    still due: its scheduled run is the one attempt that finds out whether it was fixed.
    """
    if channel.paused:
        return None
    run = previous_digest_run(channel, now)
    if channel.created_at and run < datetime.fromisoformat(channel.created_at):
        return None
    return run


def missed_runs(channel: Channel | Schedule, since: datetime, now: datetime) -> int:
    """Return how many scheduled runs fell in (since, now] before the latest one (those are skipped)."""
    count, run = 0, next_digest_run(channel, since)
    while run <= now and count < 1000:
        count += 1
        run = next_digest_run(channel, run)
    return max(count - 1, 0)


class DigestTrigger(BaseTrigger):
    """APScheduler trigger firing at `next_digest_run(schedule, ...)`."""

    __slots__ = ("schedule",)

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        return next_digest_run(self.schedule, previous_fire_time or now)

    def __str__(self) -> str:
        return f"digest[{self.schedule.weekday} {self.schedule.time} {self.schedule.tz}]"


class FetchTrigger(BaseTrigger):
    """APScheduler trigger firing at `next_fetch_run(...)`: shortly after each arXiv announcement."""

    __slots__ = ("calendar",)

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        return next_fetch_run(previous_fire_time or now, self.calendar)

    def __str__(self) -> str:
        return "arxiv-fetch[20:00 ET + delay, Sun-Thu, no holidays]"


FETCH_JOB_ID = "fetch"
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": int(MAX_LATE.total_seconds())}
"""Missed runs collapse into one (coalesce); a run up to a week late still fires once."""


def digest_job_id(channel_key: str) -> str:
    """Return the scheduler job id of a channel's digest job."""
    return f"digest:{channel_key}"


def _list_channels(core: Core) -> list[Channel]:
    from .channels import list_channels

    return list_channels(core)


def sync_digest_jobs(
    scheduler: Any, channels: Iterable[Channel], on_digest: Callable[[str], Awaitable[Any]]
) -> dict[str, int]:
    """Make the scheduler's `digest:*` jobs match `channels` (every unpaused one, broken included: its
    scheduled run is its one weekly attempt); return counts changed."""
    wanted = {digest_job_id(c.key): c for c in channels if not c.paused}
    have = {job.id: job for job in scheduler.get_jobs() if job.id.startswith("digest:")}
    removed = added = 0
    for job_id, job in have.items():
        channel = wanted.get(job_id)
        if channel is None or job.trigger.schedule != channel.schedule:
            scheduler.remove_job(job_id)
            removed += 1
    for job_id, channel in wanted.items():
        if job_id in have and have[job_id].trigger.schedule == channel.schedule:
            continue
        scheduler.add_job(
            on_digest, DigestTrigger(channel.schedule), args=[channel.key], id=job_id,
            name=f"digest for {channel.key}", replace_existing=True, **JOB_DEFAULTS,
        )
        added += 1
    return {"added": added, "removed": removed, "jobs": len(wanted)}


def register_jobs(
    scheduler: Any,
    core: Core,
    *,
    on_fetch: Callable[[], Awaitable[Any]],
    on_digest: Callable[[str], Awaitable[Any]],
    calendar: Calendar | None = None,
) -> Callable[[], dict[str, int]]:
    """Add the fetch job and one `digest:<channel key>` job per active channel; return the refresh function.

    The refresh function `refresh(core=None)` re-reads the channels from SQLite (through the given core,
    whose connection must belong to the calling thread) and adds, moves or removes digest jobs. It is
    also stored so `notify_channels_changed(core)` can call it after a subscription or schedule change.
    """
    calendar = calendar or load_calendar(core.settings.section("schedule"))
    scheduler.add_job(
        on_fetch, FetchTrigger(calendar), id=FETCH_JOB_ID, name="arXiv fetch", replace_existing=True,
        **JOB_DEFAULTS,
    )

    def refresh(caller_core: Core | None = None) -> dict[str, int]:
        counts = sync_digest_jobs(scheduler, _list_channels(caller_core or core), on_digest)
        if counts["added"] or counts["removed"]:
            log.info("digest jobs refreshed: %s", counts)
        return counts

    refresh()
    core.cache["schedule_refresh"] = refresh
    return refresh


def notify_channels_changed(core: Core) -> None:
    """Re-derive the digest jobs after a channel changed; a no-op when no scheduler runs in this process.

    Call it on the thread that owns `core`'s connection, right after subscribe/unsubscribe/set_schedule.
    """
    refresh = core.cache.get("schedule_refresh")
    if callable(refresh):
        refresh(core)
