"""The neutral command table (`COMMANDS`) and the small types every command module shares.

The table feeds Slack's help text, Discord's command descriptions and options, the README's command
table and the docs test, so every user-facing string of a command lives here, next to it. This module
also holds `Invocation` (who ran a command where), the subscription listeners, and the one-line and
clock helpers the handlers share. It imports nothing from the rest of `bot`, so every other command
module can import it without cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from digests.service import Core

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


def help_text() -> str:
    """Return the plain-text command list shown by `/digest help` (and Slack's help)."""
    lines = ["Commands:"]
    for c in COMMANDS:
        lines.append(f"{c.usage}: {c.help} Example: {c.example}")
    return "\n".join(lines)


def commands_markdown() -> str:
    """Return the README "Commands" table generated from `COMMANDS`."""
    rows = ["| Command | What it does | Example |", "|---|---|---|"]
    for c in COMMANDS:
        rows.append(f"| `{c.usage}` | {c.help} | `{c.example}` |")
    return "\n".join(rows)


def one_line(text: str, limit: int = 400) -> str:
    """Return `text` on one line, whitespace collapsed, cut to `limit` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"


def command_now(core: Core, inv: Invocation) -> datetime:
    """Return the instant of the command: `inv.now`, else the core's clock."""
    return inv.now or core.clock()
