"""Channel subscriptions: themes, schedule and size per channel key.

Registered defaults + per-channel overrides: a `channels` row stores only what differs from
`DEFAULT_SCHEDULE` / `DEFAULT_SIZE_NEW` / `DEFAULT_SIZE_CLASSIC` (NULL means "the default").

Config file vs chat commands: a `[[channels]]` entry seeds its channel, and is applied again
only when the entry itself changes (its hash is stored in `channels.config_hash`). Changes made
from chat or the CLI since then therefore survive restarts; editing the file entry wins again.
Nothing here ever deletes a channel: unsubscribing the last theme pauses it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ChannelError, ConfigError, UnknownThemeError
from .models import Channel, Schedule
from .store import utcnow_iso

if TYPE_CHECKING:
    from .service import Core

DEFAULT_SCHEDULE = Schedule(weekday=0, time="09:00", tz="UTC")
DEFAULT_SIZE_NEW = 5
DEFAULT_SIZE_CLASSIC = 1
MAX_SIZE_NEW = 20
"""Upper bound on new papers per digest: a digest is read in under a minute."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
KEY_HELP = "slack:<team>:<channel>, discord:<guild>:<channel> or console:<name>"
_KEY_PATTERNS = {
    "slack": re.compile(r"^slack:([A-Za-z0-9]+):([A-Za-z0-9]+)$"),
    "discord": re.compile(r"^discord:([0-9]+|dm):([0-9]+)$"),
    "console": re.compile(r"^console:([A-Za-z0-9_.-]{1,64})$"),
}
_TIME = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class ChannelKey:
    """A parsed channel key; `workspace` is the Slack team or Discord guild (None for console)."""

    platform: str
    workspace: str | None
    channel: str

    def __str__(self) -> str:
        parts = [self.platform, self.workspace, self.channel]
        return ":".join(p for p in parts if p is not None)


def parse_channel_key(key: str) -> ChannelKey:
    """Return the parts of a channel key; raise ChannelError for anything else."""
    key = (key or "").strip()
    pattern = _KEY_PATTERNS.get(key.split(":", 1)[0])
    match = pattern.match(key) if pattern else None
    if match is None:
        raise ChannelError(f"{key!r} is not a channel key; use {KEY_HELP}", channel=key)
    groups = match.groups()
    if len(groups) == 1:
        return ChannelKey(key.split(":", 1)[0], None, groups[0])
    return ChannelKey(key.split(":", 1)[0], groups[0], groups[1])


def parse_weekday(value: str | int) -> int:
    """Return 0 (Monday) to 6 for `mon`..`sun`, full day names or 0-6; raise ChannelError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    text = str(value).strip().lower()
    if text.isdigit() and int(text) <= 6:
        return int(text)
    for index, full in enumerate(_DAY_NAMES):
        if len(text) >= 3 and full.startswith(text):
            return index
    raise ChannelError(f"{value!r} is not a weekday; use one of {', '.join(WEEKDAYS)}")


def parse_time(value: str) -> str:
    """Return `value` as zero-padded local "HH:MM" (24-hour); raise ChannelError otherwise."""
    match = _TIME.match(str(value).strip())
    if match is None:
        raise ChannelError(f"{value!r} is not a time; use 24-hour HH:MM, e.g. 09:00")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def parse_tz(value: str) -> str:
    """Return `value` if it names an IANA time zone (e.g. Europe/Berlin); raise ChannelError otherwise."""
    name = str(value).strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ChannelError(f"{value!r} is not a time zone; use an IANA name such as Europe/Berlin or UTC") from None
    return name


def weekday_name(weekday: int) -> str:
    """Return the short name (`mon`..`sun`) of weekday 0-6."""
    return WEEKDAYS[weekday]


def get_channel(core: Core, key: str) -> Channel | None:
    """Return the channel stored under `key`, or None if it was never subscribed."""
    rows = list(core.db.query("select * from channels where key = ?", [key]))
    return _row_to_channel(rows[0]) if rows else None


def require_channel(core: Core, key: str) -> Channel:
    """Return the channel under `key`; raise ChannelError naming the subscribe command otherwise."""
    parse_channel_key(key)
    channel = get_channel(core, key)
    if channel is None:
        raise ChannelError(
            f"{key} has no subscription yet; subscribe it first, e.g. digestbot subscribe {key} --theme <theme>",
            channel=key,
        )
    return channel


def list_channels(core: Core) -> list[Channel]:
    """Return every stored channel, paused and broken ones included, ordered by key."""
    return [_row_to_channel(row) for row in core.db.query("select * from channels order by key")]


def subscribe(
    core: Core, key: str, themes: str | Iterable[str], *, tz: str | None = None, by: str | None = None
) -> Channel:
    """Subscribe `key` to one or more themes (added to any it has) and return the channel.

    A new channel gets the default schedule (Monday 09:00) in `tz`, else UTC, and the default size.
    A new or resumed subscription starts from the current week (`created_at`), never the back catalog.
    """
    parse_channel_key(key)
    names = _theme_names(core, [themes] if isinstance(themes, str) else list(themes))
    zone = parse_tz(tz) if tz else None
    now = utcnow_iso(core.clock())
    current = get_channel(core, key)
    if current is None:
        core.db.table("channels").insert(
            {"key": key, "themes_json": json.dumps(names), "tz": _override(zone, DEFAULT_SCHEDULE.tz),
             "source": _source(by), "created_at": now, "modified_at": now}
        )
        _changed(core)
    else:
        changes: dict[str, Any] = {"themes_json": json.dumps(_merge(current.themes, names)), "source": _source(by)}
        if current.paused:
            changes["created_at"] = now
        if zone:
            changes["tz"] = _override(zone, DEFAULT_SCHEDULE.tz)
        _update(core, key, changes)
    return require_channel(core, key)


def unsubscribe(core: Core, key: str, theme: str | None = None, *, by: str | None = None) -> Channel:
    """Remove one theme (or, with None, all of them); a channel left with no theme is paused, not deleted."""
    channel = require_channel(core, key)
    if theme is None:
        remaining: tuple[str, ...] = ()
    elif theme not in channel.themes:
        subscribed = ", ".join(channel.themes) or "nothing (paused)"
        raise UnknownThemeError(
            f"{key} is not subscribed to {theme!r}; it is subscribed to {subscribed}",
            theme=theme, known=list(channel.themes),
        )
    else:
        remaining = tuple(t for t in channel.themes if t != theme)
    _update(core, key, {"themes_json": json.dumps(list(remaining)), "source": _source(by)})
    return require_channel(core, key)


def set_schedule(
    core: Core, key: str, weekday: str | int | None = None, time: str | None = None, tz: str | None = None,
    *, by: str | None = None,
) -> Channel:
    """Change when `key` gets its digest; arguments left as None keep their current value."""
    channel = require_channel(core, key)
    schedule = Schedule(
        weekday=parse_weekday(weekday) if weekday is not None else channel.schedule.weekday,
        time=parse_time(time) if time is not None else channel.schedule.time,
        tz=parse_tz(tz) if tz else channel.schedule.tz,
    )
    _update(core, key, {**_schedule_columns(schedule), "source": _source(by)})
    return require_channel(core, key)


def set_size(
    core: Core, key: str, new: int | None = None, classic: int | None = None, *, by: str | None = None
) -> Channel:
    """Change how many new papers (1-20) and classics (0 or 1) the digest of `key` carries."""
    channel = require_channel(core, key)
    size_new = _check_size(new if new is not None else channel.size_new, "new papers", 1, MAX_SIZE_NEW)
    size_classic = _check_size(classic if classic is not None else channel.size_classic, "classics", 0, 1)
    _update(core, key, {**_size_columns(size_new, size_classic), "source": _source(by)})
    return require_channel(core, key)


def mark_broken(core: Core, key: str, reason: str) -> Channel:
    """Mark `key` broken (bot removed, permission missing...): retries stop; its next scheduled run tries once.

    `reason` is a sentence naming the problem and its fix. Marking an already broken channel again
    keeps the time it first broke.
    """
    current = require_channel(core, key)
    _update(core, key, {"broken_reason": reason, "broken_at": current.broken_at or utcnow_iso(core.clock())})
    return require_channel(core, key)


def clear_broken(core: Core, key: str) -> Channel:
    """Forget the broken mark of `key` so its digests are delivered again."""
    require_channel(core, key)
    _update(core, key, {"broken_reason": None, "broken_at": None})
    return require_channel(core, key)


def apply_config_channels(core: Core) -> list[str]:
    """Apply the config file's `[[channels]]`; return the keys (re)applied.

    An entry is applied when its channel is new or the entry changed since it was last applied;
    otherwise chat changes made since stand. Raise ConfigError naming the entry on bad values.
    """
    entries = core.settings.section("channels") or []
    if not isinstance(entries, list):
        raise ConfigError("[channels] in the config file must be an array of tables: [[channels]]",
                          variable="channels", where=str(core.settings.config_path))
    applied = []
    for index, entry in enumerate(entries, 1):
        values = _config_values(core, index, entry)
        digest = hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()[:16]
        row = list(core.db.query("select config_hash from channels where key = ?", [values["key"]]))
        if row and row[0]["config_hash"] == digest:
            continue
        _apply_config_entry(core, values, digest, exists=bool(row))
        applied.append(values["key"])
    return applied


def _apply_config_entry(core: Core, values: dict[str, Any], digest: str, *, exists: bool) -> None:
    now = utcnow_iso(core.clock())
    columns = {"themes_json": json.dumps(values["themes"]), **_schedule_columns(values["schedule"]),
               **_size_columns(values["size_new"], values["size_classic"]),
               "source": "config", "config_hash": digest, "modified_at": now}
    if exists:
        core.db.table("channels").update(values["key"], columns)
    else:
        core.db.table("channels").insert({"key": values["key"], "created_at": now, **columns})
    _changed(core)


def _config_values(core: Core, index: int, entry: Any) -> dict[str, Any]:
    where = f"[[channels]] entry {index}"
    if not isinstance(entry, Mapping) or "key" not in entry:
        raise ConfigError(f"{where} in the config file needs a key = \"slack:<team>:<channel>\" (or discord:/console:)",
                          variable="channels.key")
    key = str(entry["key"])
    try:
        parse_channel_key(key)
        themes = entry.get("themes", [])
        names = _theme_names(core, [themes] if isinstance(themes, str) else list(themes))
        schedule = Schedule(
            weekday=parse_weekday(entry.get("day", DEFAULT_SCHEDULE.weekday)),
            time=parse_time(entry.get("time", DEFAULT_SCHEDULE.time)),
            tz=parse_tz(entry.get("tz", DEFAULT_SCHEDULE.tz)),
        )
        size_new = _check_size(entry.get("size", DEFAULT_SIZE_NEW), "size", 1, MAX_SIZE_NEW)
        size_classic = _check_size(int(entry.get("classic", DEFAULT_SIZE_CLASSIC)), "classic", 0, 1)
    except (ChannelError, UnknownThemeError) as exc:
        raise ConfigError(f"{where} ({key}) in the config file: {exc}", variable="channels",
                          where=str(core.settings.config_path)) from None
    return {"key": key, "themes": names, "schedule": schedule, "size_new": size_new, "size_classic": size_classic}


def _theme_names(core: Core, names: list[str]) -> list[str]:
    cleaned = [n.strip().lower() for n in names if n and n.strip()]
    if not cleaned:
        known = ", ".join(core.theme_names) or "none configured"
        raise UnknownThemeError(f"Name at least one theme; themes: {known}", theme=None, known=list(core.theme_names))
    return _merge((), [core.theme(name).name for name in cleaned])


def _merge(current: Iterable[str], extra: Iterable[str]) -> list[str]:
    merged: list[str] = []
    for name in [*current, *extra]:
        if name not in merged:
            merged.append(name)
    return merged


def _check_size(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ChannelError(f"{what} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _override(value: Any, default: Any) -> Any:
    return None if value == default else value


def _schedule_columns(schedule: Schedule) -> dict[str, Any]:
    return {"weekday": _override(schedule.weekday, DEFAULT_SCHEDULE.weekday),
            "time": _override(schedule.time, DEFAULT_SCHEDULE.time),
            "tz": _override(schedule.tz, DEFAULT_SCHEDULE.tz)}


def _size_columns(size_new: int, size_classic: int) -> dict[str, Any]:
    return {"size_new": _override(size_new, DEFAULT_SIZE_NEW),
            "size_classic": _override(size_classic, DEFAULT_SIZE_CLASSIC)}


def _source(by: str | None) -> str:
    return "cli" if by == "cli" else "chat"


def _update(core: Core, key: str, changes: dict[str, Any]) -> None:
    changes = {**changes, "modified_at": utcnow_iso(core.clock())}
    core.db.table("channels").update(key, changes)
    _changed(core)


def _changed(core: Core) -> None:
    """Let a running scheduler re-derive its digest jobs (a no-op when none runs in this process)."""
    from .schedule import notify_channels_changed

    notify_channels_changed(core)


def _row_to_channel(row: Mapping[str, Any]) -> Channel:
    def pick(column: str, default: Any) -> Any:
        return default if row[column] is None else row[column]

    return Channel(
        key=row["key"],
        themes=tuple(json.loads(row["themes_json"] or "[]")),
        schedule=Schedule(
            weekday=pick("weekday", DEFAULT_SCHEDULE.weekday),
            time=pick("time", DEFAULT_SCHEDULE.time),
            tz=pick("tz", DEFAULT_SCHEDULE.tz),
        ),
        size_new=pick("size_new", DEFAULT_SIZE_NEW),
        size_classic=pick("size_classic", DEFAULT_SIZE_CLASSIC),
        broken_reason=row["broken_reason"],
        broken_at=row["broken_at"],
        created_at=row["created_at"],
        source=row["source"],
    )


def channel_to_dict(channel: Channel) -> dict[str, Any]:
    """Return the JSON object `digestbot channels --json` prints for one channel."""
    return {
        "key": channel.key,
        "platform": channel.platform,
        "themes": list(channel.themes),
        "day": weekday_name(channel.schedule.weekday),
        "time": channel.schedule.time,
        "tz": channel.schedule.tz,
        "size_new": channel.size_new,
        "size_classic": channel.size_classic,
        "paused": channel.paused,
        "broken_reason": channel.broken_reason,
        "broken_at": channel.broken_at,
        "created_at": channel.created_at,
        "source": channel.source,
    }


def describe_schedule(channel: Channel) -> str:
    """Return e.g. `Mondays at 09:00 (Europe/Berlin), 5 new papers + 1 classic`."""
    day = _DAY_NAMES[channel.schedule.weekday].capitalize()
    size = f"{channel.size_new} new papers" + (" + 1 classic" if channel.size_classic else "")
    return f"{day}s at {channel.schedule.time} ({channel.schedule.tz}), {size}"


def subscribed_since(channel: Channel) -> datetime | None:
    """Return when the channel's current subscription started, tz-aware, or None if unknown."""
    return datetime.fromisoformat(channel.created_at) if channel.created_at else None
