"""The neutral chat commands: one table (`COMMANDS`) and the handlers behind `/paper` and `/digest`.

The table feeds Slack's help text, Discord's command descriptions and options, the README's command
table and the docs test, so every user-facing string lives here, next to its command. Adapters only
translate: Slack and the console call `run_text` with the free text after the command, Discord calls
`run_sub` with its typed options, and both render the returned `Reply`.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from bot.replies import PaperCard, Reply

if TYPE_CHECKING:
    from digests.models import Channel, Paper, ThemeScore
    from digests.service import Core

log = logging.getLogger(__name__)

OptionKind = Literal["text", "query", "theme", "day", "time", "tz"]


@dataclass(frozen=True)
class Option:
    """One argument of a command; Discord gets it as a typed option, Slack as a word of free text."""

    name: str
    kind: OptionKind
    required: bool
    help: str


@dataclass(frozen=True)
class Command:
    """One chat command (`/paper`) or subcommand (`/digest subscribe`)."""

    name: Literal["paper", "digest"]
    sub: str | None
    options: tuple[Option, ...]
    help: str
    """One or two sentences for the user, in plain second person."""
    example: str
    changes_subscription: bool = False
    """True when the command changes the channel's setup, so the permission policy applies."""

    @property
    def usage(self) -> str:
        """Return the usage line, e.g. `/digest schedule <day> <time> [tz]`."""
        parts = [f"/{self.name}"] + ([self.sub] if self.sub else [])
        parts += [f"<{o.name}>" if o.required else f"[{o.name}]" for o in self.options]
        return " ".join(parts)


COMMANDS: tuple[Command, ...] = (
    Command(
        "paper",
        None,
        (
            Option(
                "query",
                "query",
                True,
                "Title words, an author, an arXiv id or an arXiv link.",
            ),
        ),
        "Look up a paper: you get up to three matches with authors, themes, a short excerpt and where "
        "this workspace already saw it. An arXiv id that isn't in the catalog yet is looked up on arXiv.",
        "/paper constitutional ai",
    ),
    Command(
        "digest",
        "subscribe",
        (
            Option(
                "theme",
                "theme",
                True,
                "One or more theme names, separated by spaces (see /digest topics).",
            ),
        ),
        "Subscribe this channel to one or more themes; its weekly digest then includes their new papers.",
        "/digest subscribe rlhf oversight",
        changes_subscription=True,
    ),
    Command(
        "digest",
        "unsubscribe",
        (
            Option(
                "theme",
                "theme",
                False,
                "The theme to drop; leave it out to drop them all.",
            ),
        ),
        "Drop a theme from this channel, or all of them; a channel with no themes left is paused, nothing is deleted.",
        "/digest unsubscribe oversight",
        changes_subscription=True,
    ),
    Command(
        "digest",
        "topics",
        (),
        "List the themes you can subscribe to, one line each, and show which ones this channel has.",
        "/digest topics",
    ),
    Command(
        "digest",
        "schedule",
        (
            Option(
                "day",
                "day",
                True,
                "Day of the week: mon, tue, wed, thu, fri, sat or sun.",
            ),
            Option("time", "time", True, "Local time as HH:MM, 24-hour (08:30, 17:00)."),
            Option(
                "tz",
                "tz",
                False,
                "IANA time zone such as Europe/Berlin; leave it out to keep the current one.",
            ),
        ),
        "Choose when this channel's weekly digest arrives: a weekday, a local time and a time zone.",
        "/digest schedule fri 08:30 Europe/Berlin",
        changes_subscription=True,
    ),
    Command(
        "digest",
        "preview",
        (),
        "Show only you what this channel's next digest would hold if it were sent now.",
        "/digest preview",
    ),
    Command(
        "digest",
        "status",
        (),
        "Show this channel's next digest time, its last digest, how the last arXiv fetch went, and "
        "anything that stops delivery.",
        "/digest status",
    ),
    Command(
        "digest",
        "help",
        (),
        "List the /paper and /digest commands with an example each.",
        "/digest help",
    ),
)

SubscriptionListener = Callable[[str], None]
"""Called with a channel key after its themes or schedule changed (e.g. the scheduler's refresh)."""

SUBSCRIPTION_LISTENERS: list[SubscriptionListener] = []
"""Module-level listeners notified after every subscription change, whichever adapter made it."""


def add_subscription_listener(listener: SubscriptionListener) -> None:
    """Register `listener` to be called with the channel key after every subscription change."""
    if listener not in SUBSCRIPTION_LISTENERS:
        SUBSCRIPTION_LISTENERS.append(listener)


def remove_subscription_listener(listener: SubscriptionListener) -> None:
    """Unregister a listener added with `add_subscription_listener` (no error if absent)."""
    if listener in SUBSCRIPTION_LISTENERS:
        SUBSCRIPTION_LISTENERS.remove(listener)


@dataclass(frozen=True)
class Invocation:
    """Who ran a command where: filled in by the adapter, read by the permission policy and handlers."""

    platform: str
    """`slack`, `discord` or `console`."""
    channel: str
    """Channel key: `slack:<team>:<channel>`, `discord:<guild>:<channel>` or `console:<name>`."""
    user: str
    can_manage: bool | None = None
    """Discord: whether the user has Manage Channels here; None where the platform has no such notion."""
    now: datetime | None = None
    """The instant of the command (tz-aware); None means the core's clock."""
    on_change: SubscriptionListener | None = None
    """Extra listener for this invocation only, called after a subscription change."""


def find_command(name: str, sub: str | None = None) -> Command | None:
    """Return the table entry for `/name sub`, or None."""
    for command in COMMANDS:
        if command.name == name and command.sub == sub:
            return command
    return None


def digest_subcommands() -> tuple[str, ...]:
    """Return the `/digest` subcommand names in table order."""
    return tuple(c.sub for c in COMMANDS if c.name == "digest" and c.sub)


def run_text(core: Core, inv: Invocation, command: str, text: str) -> Reply:
    """Run `/paper <text>` or `/digest <text>` from free text (Slack, console); never raises."""
    words = clean_text(text, inv.platform).split()
    sub = words[0].lower() if command == "digest" and words else None
    return _guarded(core, inv, command, sub, lambda: _dispatch_text(core, inv, command, text))


def run_sub(core: Core, inv: Invocation, command: str, sub: str | None, args: Mapping[str, Any]) -> Reply:
    """Run a command from typed options (Discord): `args` maps option names to values; never raises."""
    return _guarded(core, inv, command, sub, lambda: _dispatch(core, inv, command, sub, dict(args)))


def _guarded(core: Core, inv: Invocation, command: str, sub: str | None, run: Callable[[], Reply]) -> Reply:
    """Run one command at the interaction boundary: core errors become a one-line refusal, never a traceback."""
    from digests.errors import DigestBotError

    try:
        reply = run()
    except DigestBotError as exc:
        reply = Reply(
            _one_line(str(exc)),
            ok=False,
            suggestions=tuple(getattr(exc, "suggestions", ()) or ()),
        )
    except Exception:
        # Outermost per-interaction boundary (STYLE 4.6): log with context, record it, answer one line.
        log.exception("/%s %s failed in %s for %s", command, sub or "", inv.channel, inv.user)
        reply = Reply(INTERNAL_ERROR, ok=False)
    _record_command(core, inv, command, sub, reply.ok)
    return reply


def _record_command(core: Core, inv: Invocation, command: str, sub: str | None, ok: bool) -> None:
    import sqlite3

    from digests.store import utcnow_iso

    name = f"/{command} {sub}" if sub in digest_subcommands() else f"/{command}"
    try:
        core.db.table("command_log").insert(
            {
                "channel": inv.channel,
                "user_id": inv.user,
                "command": name,
                "ok": int(ok),
                "at": utcnow_iso(_now(core, inv)),
            }
        )
    except sqlite3.Error as exc:
        log.warning("could not record %s in the command log: %s", name, exc)


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"


def _now(core: Core, inv: Invocation) -> datetime:
    return inv.now or core.clock()


# -- text parsing ------------------------------------------------------------------------------

_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>\s]+)(?:\|[^>]*)?>")
_SLACK_SPECIAL = re.compile(r"<[!@#][^>]*>")
_AMPM = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\.?$", re.IGNORECASE)
_COMPACT_TIME = re.compile(r"^(\d{1,2})[h.](\d{2})$", re.IGNORECASE)


def clean_text(text: str | None, platform: str = "console") -> str:
    """Return user text with Slack's escaping undone, links reduced to their URL and mentions dropped."""
    text = text or ""
    if platform == "slack":
        text = _SLACK_LINK.sub(r"\1", text)
        text = _SLACK_SPECIAL.sub(" ", text)
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())


def _dispatch_text(core: Core, inv: Invocation, command: str, text: str) -> Reply:
    text = clean_text(text, inv.platform)
    if command == "paper":
        return _dispatch(core, inv, "paper", None, {"query": text})
    if command != "digest":
        return _unknown_command(command)
    words = text.split()
    if not words:
        return _dispatch(core, inv, "digest", "help", {})
    sub, rest = words[0].lower(), words[1:]
    if sub not in digest_subcommands():
        return _dispatch(core, inv, "digest", sub, {})
    cmd = find_command("digest", sub)
    assert cmd is not None
    if sub in ("subscribe", "unsubscribe"):
        return _dispatch(core, inv, "digest", sub, {"theme": " ".join(rest)} if rest else {})
    if len(rest) > len(cmd.options):
        return Reply(f"Too many words for {cmd.usage}; for example: {cmd.example}", ok=False)
    return _dispatch(core, inv, "digest", sub, dict(zip((o.name for o in cmd.options), rest)))


def _dispatch(core: Core, inv: Invocation, command: str, sub: str | None, args: dict[str, Any]) -> Reply:
    if command not in ("paper", "digest"):
        return _unknown_command(command)
    if command == "digest" and not sub:
        sub = "help"
    cmd = find_command(command, sub if command == "digest" else None)
    if cmd is None:
        return _unknown_sub(str(sub))
    values = {k: " ".join(str(v).split()) for k, v in args.items() if v is not None and str(v).strip()}
    missing = [o.name for o in cmd.options if o.required and o.name not in values]
    if missing:
        return Reply(
            f"{cmd.usage} needs {' and '.join(missing)}; for example: {cmd.example}",
            ok=False,
        )
    if cmd.changes_subscription:
        refusal = permission_refusal(core, inv)
        if refusal:
            return Reply(refusal, ok=False)
    return _HANDLERS[cmd.sub or cmd.name](core, inv, values)


def _unknown_command(command: str) -> Reply:
    return Reply(
        f"There is no /{_one_line(command, 40)} command; try /paper or /digest help.",
        ok=False,
    )


def _unknown_sub(sub: str) -> Reply:
    close = tuple(difflib.get_close_matches(sub.lower(), digest_subcommands(), n=2, cutoff=0.5))
    hint = f" Did you mean /digest {close[0]}?" if close else ""
    return Reply(
        f"There is no /digest {_one_line(sub, 40)} command.{hint} Try /digest help for the list.",
        ok=False,
        suggestions=tuple(f"/digest {s}" for s in close),
    )


# -- permissions -------------------------------------------------------------------------------

DISCORD_REFUSAL = "Only members who can manage this channel (Manage Channels) can change its digest."
ADMINS_REFUSAL = "Only the digest admins set in the bot's config can change this channel's digest; ask one of them."


def permission_refusal(core: Core, inv: Invocation) -> str | None:
    """Return why `inv.user` may not change this channel's subscription, or None when they may.

    Listed admins (`settings.admins`) always may, and so does the local console (its user already
    owns the database). On Discord everyone else needs Manage Channels (`inv.can_manage`, filled by
    the adapter). Elsewhere anyone in the channel may, unless admins are listed: then only they may.
    """
    admins = core.settings.admins
    if inv.platform == "console" or inv.user in admins:
        return None
    if inv.platform == "discord":
        return None if inv.can_manage else DISCORD_REFUSAL
    return ADMINS_REFUSAL if admins else None


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


# -- /paper ------------------------------------------------------------------------------------

MAX_CARDS = 3
_EMBEDDED_ID = re.compile(r"(?<![\w.])(\d{4}\.\d{4,5})(?:v(\d+))?(?![\w.])")


def _paper(core: Core, inv: Invocation, args: dict[str, Any]) -> Reply:
    from digests import catalog, lookup

    query = args["query"]
    shown = _one_line(query, 80)
    ref = catalog.parse_arxiv_ref(query)
    embedded = _EMBEDDED_ID.search(query) if ref is None else None
    arxiv_id = ref[0] if ref else (embedded.group(1) if embedded else None)
    if arxiv_id:
        paper = catalog.get_by_arxiv_id(core, arxiv_id)
        if paper is not None:
            return Reply(f"arXiv {arxiv_id}:", cards=(_card(core, inv, paper),))
        if ref is not None:
            return _arxiv_lookup(core, inv, arxiv_id)
    if not lookup.query_terms(query):
        return Reply(EMPTY_QUERY, ok=False)
    found = lookup.search(core, query, limit=MAX_CARDS)
    if not found:
        close = tuple(lookup.suggest_titles(core, query))
        hint = "" if close else " Try fewer or different words, or an arXiv id."
        return Reply(
            f"Nothing in the catalog matches \u201c{shown}\u201d.{hint}",
            suggestions=close,
        )
    note = " (I used the start of your long query.)" if len(query) > lookup.MAX_QUERY_CHARS else ""
    cards = tuple(_card(core, inv, p) for p, _ in found)
    if found[0][1] < lookup.WEAK_MATCH:
        close = tuple(lookup.suggest_titles(core, query))
        if close:
            # A misspelt title finds only stray words; the closest title is the likelier meaning.
            best = [p for p, _ in lookup.search(core, close[0], limit=1)]
            papers = best + [p for p, _ in found if not best or p.id != best[0].id]
            cards = tuple(_card(core, inv, p) for p in papers[:MAX_CARDS])
            return Reply(f"No paper has all of \u201c{shown}\u201d; nearest matches:{note}", cards=cards,
                         suggestions=close[1:])
    return Reply(f"Best matches for \u201c{shown}\u201d:{note}", cards=cards)


EMPTY_QUERY = "Tell me what to look for: title words, an author or an arXiv id, e.g. /paper constitutional ai"
INTERNAL_ERROR = "Something went wrong on our side; it has been logged. Please try again in a minute."


def workspace_prefix(channel_key: str) -> str:
    """Return the key prefix shared by every channel of the same workspace (`slack:T123:`)."""
    parts = channel_key.split(":")
    return ":".join(parts[:-1]) + ":" if len(parts) > 1 else channel_key


def _card(core: Core, inv: Invocation, paper: Paper, scores: list[ThemeScore] | None = None) -> PaperCard:
    from digests import catalog

    if scores is None:
        scores = catalog.scores_for(core, paper.id) if paper.id is not None else []
    hits = sorted((s for s in scores if s.matched), key=lambda s: -s.score)
    themes = tuple(s.theme for s in hits) or paper.themes
    why: list[str] = []
    for s in hits:
        why += [w for w in s.why if w not in why and w != paper.title]
    posted = catalog.posted_in(core, paper.arxiv_id, workspace_prefix(inv.channel)) if paper.arxiv_id else []
    return PaperCard(paper, themes, tuple(why[:3]), hits[0].score if hits else None, tuple(posted))


LOOKUP_TIMEOUT_SECONDS = 10.0
_LOOKUP_CLIENTS: dict[tuple[str, str], Any] = {}
"""One lookup client per arXiv URL for the whole process, so its 3-second spacing holds across commands."""


def lookup_client(core: Core) -> Any:
    """Return the ArxivClient `/paper` uses: `core.cache["arxiv_client"]` if the runner set one, else a shared one."""
    from digests.arxiv_api import ArxivClient

    client = core.cache.get("arxiv_client")
    if client is not None:
        return client
    s = core.settings
    key = (s.arxiv_api_url, s.user_agent)
    if key not in _LOOKUP_CLIENTS:
        # No retries and a short timeout: someone is waiting for this answer in chat.
        _LOOKUP_CLIENTS[key] = ArxivClient(
            s.arxiv_api_url,
            user_agent=s.user_agent,
            delay_seconds=s.arxiv_delay_seconds,
            timeout=LOOKUP_TIMEOUT_SECONDS,
            retries=0,
        )
    return _LOOKUP_CLIENTS[key]


def _arxiv_lookup(core: Core, inv: Invocation, arxiv_id: str) -> Reply:
    """Look an id up on arXiv itself (it is not in the catalog) and add it; say plainly when that can't be done."""
    from digests.errors import ArxivError
    from digests.fetch import lookup_and_store

    try:
        paper = lookup_and_store(core, arxiv_id, client=lookup_client(core))
    except ArxivError as exc:
        return Reply(
            f"arXiv {arxiv_id} is not in the catalog and arXiv could not be reached ({_one_line(str(exc), 160)}); "
            "try again in a few minutes.",
            ok=False,
        )
    if paper is None:
        return Reply(f"arXiv has no paper {arxiv_id}; check the id.", ok=False)
    return Reply(
        f"arXiv {arxiv_id} (found on arXiv and added to the catalog):",
        cards=(_card(core, inv, paper),),
    )


# -- /digest -----------------------------------------------------------------------------------


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
    day = _DAY_WORDS[s.weekday]
    nxt = next_digest_run(channel, now).astimezone(ZoneInfo(s.tz))
    return f"every {day} at {s.time} ({s.tz}); next one {nxt:%a %d %b %H:%M %Z}"


_DAY_WORDS = (
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
        f"{_when_text(channel, _now(core, inv))}. It starts with this week's papers.",
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
        lines.append(f"{mark} {t.name}: {t.label}. {_one_line(t.description, 160)}")
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
        f"This channel's digest now arrives {_when_text(channel, _now(core, inv))}.",
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

    zones = _zones()
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
        f"{_one_line(text, 60)!r} is not a time zone.{hint} Use an IANA name such as Europe/Berlin or UTC.",
        suggestions=names,
    )


@functools.lru_cache(maxsize=1)
def _zones() -> tuple[str, ...]:
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
    digest = build_digest(core, inv.channel, _now(core, inv))
    return Reply(
        "Here is what this channel's next digest would hold if it were sent now (only you see this):",
        digest=digest,
    )


def _status(core: Core, inv: Invocation, args: dict[str, Any]) -> Reply:
    from digests import channels

    channel = channels.get_channel(core, inv.channel)
    if channel is None:
        return Reply(NOT_SUBSCRIBED, ok=False)
    now = _now(core, inv)
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
        error = f": {_one_line(str(attempt['error']), 200)}" if attempt.get("error") else ""
        retry = f", retrying {_short_time(attempt['retry_at'])}" if attempt.get("retry_at") else ""
        lines.append(f"Latest attempt (week {attempt.get('week')}): {attempt.get('status')}{error}{retry}")
    fetch = status.get("last_fetch")
    if fetch:
        window = f"{str(fetch.get('window_start'))[:10]} to {str(fetch.get('window_end'))[:10]}"
        if fetch.get("outcome") == "failed":
            reason = _one_line(str(fetch.get("reason") or "unknown reason"), 200)
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


def help_text() -> str:
    """Return the plain-text command list shown by `/digest help` (and Slack's help)."""
    lines = ["Commands:"]
    for c in COMMANDS:
        lines.append(f"{c.usage}: {c.help} Example: {c.example}")
    return "\n".join(lines)


_HANDLERS: dict[str, Callable[[Core, Invocation, dict[str, Any]], Reply]] = {
    "paper": _paper,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "topics": _topics,
    "schedule": _schedule,
    "preview": _preview,
    "status": _status,
    "help": _help,
}


# -- autocomplete ------------------------------------------------------------------------------

MAX_CHOICES = 25
"""Discord accepts at most 25 autocomplete choices, names and values of at most 100 characters."""
CHOICE_MAX = 100


def autocomplete(core: Core, command: str, sub: str | None, option: str, partial: str) -> list[tuple[str, str]]:
    """Return up to 25 (name, value) choices for `option` given what the user typed so far."""
    cmd = find_command(command, sub)
    kind = next((o.kind for o in cmd.options if o.name == option), None) if cmd else None
    raw = partial or ""
    partial = " ".join(raw.split())[:CHOICE_MAX] + (" " if raw.endswith(" ") and raw.strip() else "")
    if kind == "query":
        from digests.errors import DigestBotError

        try:
            return _complete_paper(core, partial)
        except DigestBotError as exc:
            log.warning("autocomplete for %r failed: %s", partial[:40], exc)
            return []
    if kind == "theme":
        return _complete_theme(core, partial)
    if kind == "tz":
        return _complete_tz(partial)
    if kind == "day":
        return [(d, d[:3].lower()) for d in _DAY_WORDS if d.lower().startswith(partial.lower()[:3])][:MAX_CHOICES]
    return []


def _choice(name: str, value: str) -> tuple[str, str]:
    name = " ".join(name.split())
    if len(name) > CHOICE_MAX:
        name = name[: CHOICE_MAX - 1] + "\u2026"
    return name, value[:CHOICE_MAX]


def _complete_paper(core: Core, partial: str) -> list[tuple[str, str]]:
    """Return papers for what the user typed so far; the last word may be unfinished ("constitu")."""
    from digests import catalog, lookup

    if not lookup.query_terms(partial) and catalog.parse_arxiv_ref(partial) is None:
        return []
    found: dict[int | None, Paper] = {}
    if not partial.endswith(" "):
        for paper in catalog.get_papers(core, lookup.title_prefix_ids(core, partial, MAX_CHOICES)):
            found.setdefault(paper.id, paper)
    for paper, _ in lookup.search(core, partial, limit=MAX_CHOICES):
        found.setdefault(paper.id, paper)
    return [_choice(p.display_title, p.arxiv_id or p.display_title) for p in list(found.values())[:MAX_CHOICES]]


def _complete_theme(core: Core, partial: str) -> list[tuple[str, str]]:
    """Complete the last theme word of `partial`, keeping the themes typed before it and skipping repeats."""
    words = partial.split()
    last = words[-1].casefold() if words and not partial.endswith(" ") else ""
    done = words[:-1] if last else words
    prefix = " ".join(done) + " " if done else ""
    out = []
    for t in core.themes:
        if t.name in done or not (not last or last in t.name.casefold() or last in t.label.casefold()):
            continue
        out.append(_choice(f"{prefix}{t.name}" if prefix else f"{t.name}: {t.label}", f"{prefix}{t.name}"))
    return out[:MAX_CHOICES]


def _complete_tz(partial: str) -> list[tuple[str, str]]:
    folded = partial.casefold().replace(" ", "_")
    zones = _zones()
    starts = [z for z in zones if z.casefold().startswith(folded) or z.casefold().rsplit("/", 1)[-1].startswith(folded)]
    inside = [z for z in zones if folded in z.casefold() and z not in starts]
    return [_choice(z, z) for z in (starts + inside)[:MAX_CHOICES]]


def commands_markdown() -> str:
    """Return the README "Commands" table generated from `COMMANDS`."""
    rows = ["| Command | What it does | Example |", "|---|---|---|"]
    for c in COMMANDS:
        rows.append(f"| `{c.usage}` | {c.help} | `{c.example}` |")
    return "\n".join(rows)
