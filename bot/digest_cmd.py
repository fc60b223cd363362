"""The `/digest` subcommands: subscribe, unsubscribe, topics, schedule, preview, status and help.

Also the parsing helpers they need (themes, times, time zones) and the status lines.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.command_table import (
    SUBSCRIPTION_LISTENERS,
    Invocation,
    command_now,
    help_text,
    one_line,
)
from bot.replies import Reply

if TYPE_CHECKING:
    from digests.models import Channel
    from digests.service import Core

# Logged under "bot.commands", as before the split, so log filters and captures keep matching.
log = logging.getLogger("bot.commands")

_AMPM = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\.?$", re.IGNORECASE)
_COMPACT_TIME = re.compile(r"^(\d{1,2})[h.](\d{2})$", re.IGNORECASE)


def _changed(core: Core, inv: Invocation) -> None:
    """Tell the scheduler and every listener that the channel's setup changed."""
    from digests.schedule import notify_channels_changed

    notify_channels_changed(core)
    for listener in [*SUBSCRIPTION_LISTENERS, *([inv.on_change] if inv.on_change else [])]:
        try:
            listener(inv.channel)
        except Exception:
            # The change is already stored; a failing listener must not turn it into a "failed" reply.
            log.exception("subscription listener %r failed for %s", listener, inv.channel)


def _resolve_themes(core: Core, text: str) -> list[str]:
    """Return the theme slugs named in `text` (slugs or labels, any case, spaces or commas between)."""
    from digests.themes import find_theme

    whole = text.strip()
    if any(whole.casefold() == t.label.casefold() for t in core.themes):
        return [find_theme(core.themes, whole).name]
    names: list[str] = []
    for word in re.split(r"[\s,]+", whole):
        if word:
            name = find_theme(core.themes, word).name
            if name not in names:
                names.append(name)
    return names


def _labels(core: Core, names: Sequence[str]) -> str:
    by_name = {t.name: t.label for t in core.themes}
    return ", ".join(f"{by_name.get(n, n)} ({n})" for n in names)


def _when_text(channel: Channel, now: datetime) -> str:
    from digests.schedule import next_digest_run

    s = channel.schedule
    day = DAY_WORDS[s.weekday]
    nxt = next_digest_run(channel, now).astimezone(ZoneInfo(s.tz))
    return f"every {day} at {s.time} ({s.tz}); next one {nxt:%a %d %b %H:%M %Z}"


DAY_WORDS = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)
NOT_SUBSCRIBED = "This channel has no themes yet. Subscribe it first, for example: /digest subscribe rlhf"


def _subscribe(core: Core, inv: Invocation, args: dict[str, Any]) -> Reply:
    from digests import channels

    names = _resolve_themes(core, args["theme"])
    channel = channels.subscribe(core, inv.channel, names, by=inv.platform)
    _changed(core, inv)
    return Reply(
        f"This channel now gets {_labels(core, channel.themes)} in its weekly digest, "
        f"{_when_text(channel, command_now(core, inv))}. It starts with this week's papers.",
        ephemeral=False,
    )


def _unsubscribe(core: Core, inv: Invocation, args: dict[str, Any]) -> Reply:
    from digests import channels

    current = channels.get_channel(core, inv.channel)
    if current is None or current.paused:
        return Reply("This channel has no themes, so there is nothing to drop.", ok=False)
    names = _resolve_themes(core, args["theme"]) if args.get("theme") else [None]
    stray = [n for n in names if n is not None and n not in current.themes]
    if stray:
        return Reply(
            f"This channel isn't subscribed to {', '.join(stray)}; it has {', '.join(current.themes)}.",
            ok=False,
            suggestions=current.themes,
        )
    channel = current
    for name in names:
        channel = channels.unsubscribe(core, inv.channel, name, by=inv.platform)
    _changed(core, inv)
    if channel.paused:
        return Reply(
            "This channel has no themes left, so its digest is paused. "
            "Subscribe again any time with /digest subscribe <theme>.",
            ephemeral=False,
        )
    return Reply(
        f"Done. This channel still gets {_labels(core, channel.themes)}.",
        ephemeral=False,
    )


def _topics(core: Core, inv: Invocation, args: dict[str, Any]) -> Reply:
    from digests import channels

    channel = channels.get_channel(core, inv.channel)
    mine = set(channel.themes) if channel else set()
    lines = ["Themes you can subscribe to (\u2713 = this channel has it):"]
    for t in core.themes:
        mark = "\u2713" if t.name in mine else "\u2022"
        lines.append(f"{mark} {t.name}: {t.label}. {one_line(t.description, 160)}")
    lines.append(
        "Subscribe with /digest subscribe <theme>, e.g. /digest subscribe " + (core.theme_names[:1] or ("rlhf",))[0]
    )
    return Reply("\n".join(lines))


def _schedule(core: Core, inv: Invocation, args: dict[str, Any]) -> Reply:
    from digests import channels

    if channels.get_channel(core, inv.channel) is None:
        return Reply(NOT_SUBSCRIBED, ok=False)
    tz = resolve_tz(args["tz"]) if args.get("tz") else None
    channel = channels.set_schedule(
        core,
        inv.channel,
        args["day"],
        normalise_time(args["time"]),
        tz,
        by=inv.platform,
    )
    _changed(core, inv)
    return Reply(
        f"This channel's digest now arrives {_when_text(channel, command_now(core, inv))}.",
        ephemeral=False,
    )


def normalise_time(text: str) -> str:
    """Return "8am", "8:30pm", "0830" or "8h30" as HH:MM; anything else is returned for the core to refuse."""
    text = text.strip()
    match = _AMPM.match(text)
    if match:
        hour, minute = int(match.group(1)), int(match.group(2) or 0)
        if 1 <= hour <= 12:
            hour = hour % 12 + (12 if match.group(3).lower() == "p" else 0)
            return f"{hour:02d}:{minute:02d}"
    match = _COMPACT_TIME.match(text)
    if match:
        return f"{match.group(1)}:{match.group(2)}"
    if text.isdigit() and len(text) == 4:
        return f"{text[:2]}:{text[2:]}"
    return text


def resolve_tz(text: str) -> str:
    """Return the IANA zone `text` names (any case, or just its city); raise ChannelError with suggestions."""
    from digests.errors import ChannelError

    zones = time_zones()
    folded = text.strip().casefold().replace(" ", "_")
    for zone in zones:
        if zone.casefold() == folded:
            return zone
    by_city = [z for z in zones if z.casefold().rsplit("/", 1)[-1] == folded]
    if len(by_city) == 1:
        return by_city[0]
    close = difflib.get_close_matches(folded, [z.casefold() for z in zones], n=3, cutoff=0.6)
    names = [z for c in close for z in zones if z.casefold() == c] or by_city[:3]
    hint = f" Did you mean {' or '.join(names)}?" if names else ""
    raise ChannelError(
        f"{one_line(text, 60)!r} is not a time zone.{hint} Use an IANA name such as Europe/Berlin or UTC.",
        suggestions=names,
    )


@functools.lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    import zoneinfo

    return tuple(sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC"))


def _preview(core: Core, inv: Invocation, args: dict[str, Any]) -> Reply:
    from digests import channels

    channel = channels.get_channel(core, inv.channel)
    if channel is None or channel.paused:
        return Reply(NOT_SUBSCRIBED, ok=False)
    try:
        from digests.build import build_digest
    except ImportError:
        return Reply("Previews are not available in this version yet.", ok=False)
    digest = build_digest(core, inv.channel, command_now(core, inv))
    return Reply(
        "Here is what this channel's next digest would hold if it were sent now (only you see this):",
        digest=digest,
    )


def _status(core: Core, inv: Invocation, args: dict[str, Any]) -> Reply:
    from digests import channels

    channel = channels.get_channel(core, inv.channel)
    if channel is None:
        return Reply(NOT_SUBSCRIBED, ok=False)
    now = command_now(core, inv)
    lines = [f"Themes: {_labels(core, channel.themes)}" if channel.themes else "Themes: none, so the digest is paused"]
    if channel.themes:
        lines.append(f"Digest: {_when_text(channel, now)}")
    if channel.broken_reason:
        lines.append(f"Delivery is stopped: {channel.broken_reason}. Fix that, then the next digest goes out as usual.")
    try:
        from digests.ledger import channel_status
    except ImportError:
        return Reply("\n".join(lines))
    lines += status_lines(channel_status(core, inv.channel, now))
    return Reply("\n".join(dict.fromkeys(lines)))


def status_lines(status: Mapping[str, Any]) -> list[str]:
    """Return readable lines for the ledger's `channel_status` dict: last digest, last attempt, last fetch."""
    lines = []
    last = status.get("last_digest")
    if last:
        lines.append(f"Last digest: week {last.get('week')}, posted {_short_time(last.get('posted_at'))}")
    else:
        lines.append("Last digest: none sent yet")
    attempt = status.get("last_attempt")
    if attempt:
        error = f": {one_line(str(attempt['error']), 200)}" if attempt.get("error") else ""
        retry = f", retrying {_short_time(attempt['retry_at'])}" if attempt.get("retry_at") else ""
        lines.append(f"Latest attempt (week {attempt.get('week')}): {attempt.get('status')}{error}{retry}")
    if status.get("delivering"):
        lines.append(f"Being delivered now (until {_short_time(status['delivering']['until'])})")
    fetch = status.get("last_fetch")
    if fetch:
        window = f"{str(fetch.get('window_start'))[:10]} to {str(fetch.get('window_end'))[:10]}"
        if fetch.get("outcome") == "failed":
            reason = one_line(str(fetch.get("reason") or "unknown reason"), 200)
            lines.append(f"Last arXiv fetch ({_short_time(fetch.get('started'))}) failed: {reason}")
        else:
            lines.append(
                f"Last arXiv fetch ({_short_time(fetch.get('started'))}): {fetch.get('outcome')}, "
                f"{fetch.get('papers', 0)} papers for {window}"
            )
    else:
        lines.append("Last arXiv fetch: none yet, so digests only hold the classic")
    return lines


def _short_time(iso: Any) -> str:
    """Return an ISO time as "2026-11-23 09:00 UTC" (or the text unchanged if it isn't one)."""
    try:
        moment = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if moment.tzinfo is not None:
        moment = moment.astimezone(ZoneInfo("UTC"))
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _help(core: Core, inv: Invocation, args: dict[str, Any]) -> Reply:
    return Reply(help_text())
