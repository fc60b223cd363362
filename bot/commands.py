"""The chat commands' entry points: parsing, dispatch, the permission policy and the error boundary.

Adapters only translate: Slack and the console call `run_text` with the free text after the command,
Discord calls `run_sub` with its typed options, and both render the returned `Reply`. The pieces live
in modules of one concern each, and this module re-exports their public names, so `bot.commands`
stays the one place adapters and tests import from:

- `bot.command_table`: the command table (`COMMANDS`), `Invocation`, subscription listeners, help text;
- `bot.paper_cmd`: the `/paper` handler, the arXiv lookup and paper cards;
- `bot.digest_cmd`: the `/digest` subcommand handlers and their parsing helpers;
- `bot.autocomplete`: autocomplete choices for Discord's typed options.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bot.autocomplete import CHOICE_MAX, MAX_CHOICES, autocomplete
from bot.command_table import (
    COMMANDS,
    SUBSCRIPTION_LISTENERS,
    Command,
    Invocation,
    Option,
    OptionKind,
    SubscriptionListener,
    add_subscription_listener,
    command_now,
    commands_markdown,
    digest_subcommands,
    find_command,
    help_text,
    one_line,
    remove_subscription_listener,
)
from bot.digest_cmd import (
    NOT_SUBSCRIBED,
    _help,
    _preview,
    _schedule,
    _status,
    _subscribe,
    _topics,
    _unsubscribe,
    normalise_time,
    resolve_tz,
    status_lines,
)
from bot.paper_cmd import (
    EMPTY_QUERY,
    LOOKUP_TIMEOUT_SECONDS,
    MAX_CARDS,
    _paper,
    lookup_client,
    workspace_prefix,
)
from bot.replies import Reply

if TYPE_CHECKING:
    from digests.service import Core

__all__ = [
    "ADMINS_REFUSAL",
    "CHOICE_MAX",
    "COMMANDS",
    "DISCORD_REFUSAL",
    "EMPTY_QUERY",
    "INTERNAL_ERROR",
    "LOOKUP_TIMEOUT_SECONDS",
    "MAX_CARDS",
    "MAX_CHOICES",
    "NOT_SUBSCRIBED",
    "SUBSCRIPTION_LISTENERS",
    "Command",
    "Invocation",
    "Option",
    "OptionKind",
    "SubscriptionListener",
    "add_subscription_listener",
    "autocomplete",
    "clean_text",
    "commands_markdown",
    "digest_subcommands",
    "find_command",
    "help_text",
    "lookup_client",
    "normalise_time",
    "permission_refusal",
    "remove_subscription_listener",
    "resolve_tz",
    "run_sub",
    "run_text",
    "status_lines",
    "workspace_prefix",
]

log = logging.getLogger(__name__)

INTERNAL_ERROR = "Something went wrong on our side; it has been logged. Please try again in a minute."


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
            one_line(str(exc)),
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
                "at": utcnow_iso(command_now(core, inv)),
            }
        )
    except sqlite3.Error as exc:
        log.warning("could not record %s in the command log: %s", name, exc)


# -- text parsing ------------------------------------------------------------------------------

_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>\s]+)(?:\|[^>]*)?>")
_SLACK_SPECIAL = re.compile(r"<[!@#][^>]*>")


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
        f"There is no /{one_line(command, 40)} command; try /paper or /digest help.",
        ok=False,
    )


def _unknown_sub(sub: str) -> Reply:
    close = tuple(difflib.get_close_matches(sub.lower(), digest_subcommands(), n=2, cutoff=0.5))
    hint = f" Did you mean /digest {close[0]}?" if close else ""
    return Reply(
        f"There is no /digest {one_line(sub, 40)} command.{hint} Try /digest help for the list.",
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
