"""The token-free text adapter (errbot's text mode): read `/paper` and `/digest` lines, print the replies.

Lines come from a terminal (with a prompt) or from a pipe, so tests and the demo can feed commands on
stdin. Every line goes through the same neutral commands as Slack and Discord, for channel
`console:<name>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from bot.commands import Invocation, run_text
from bot.render_text import render_text
from bot.replies import Reply

if TYPE_CHECKING:
    from digests.service import Core

PROMPT = "digestbot> "
QUIT_WORDS = frozenset({"quit", "exit", "/quit", "/exit", ":q"})
CONSOLE_HELP = "Type /paper <words or arXiv id> or /digest <subcommand> (/digest help lists them); quit to leave."


def channel_key(name: str) -> str:
    """Return the console channel key for `name` (`local` -> `console:local`; a full key is kept)."""
    name = name.strip()
    return name if name.startswith("console:") else f"console:{name}"


def run_line(core: Core, channel: str, user: str, line: str, now: datetime | None = None) -> Reply | None:
    """Run one console line (`/paper ...`, `/digest ...`, or the same without the slash); None for a blank line."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    word, _, rest = line.partition(" ")
    command = word.lstrip("/").lower()
    if command in ("help", "?"):
        return Reply(CONSOLE_HELP)
    if command not in ("paper", "digest"):
        return Reply(f"Unknown command {word[:40]!r}. {CONSOLE_HELP}", ok=False)
    inv = Invocation(platform="console", channel=channel, user=user, now=now)
    return run_text(core, inv, command, rest)


def run_console(
    core: Core,
    channel: str,
    lines: Iterable[str],
    echo: Callable[[str], None],
    *,
    user: str = "console",
    prompt: bool = False,
) -> int:
    """Run every line until end of input or `quit`; print each reply; return how many replies failed."""
    failures = 0
    for line in lines:
        if line.strip().lower() in QUIT_WORDS:
            break
        if not prompt and line.strip():
            echo(f"{PROMPT}{line.strip()}")
        reply = run_line(core, channel, user, line)
        if reply is not None:
            echo(render_text(reply) + "\n")
            failures += not reply.ok
    return failures


def prompt_lines(read: Callable[[str], str] = input) -> Iterable[str]:
    """Yield lines typed at a prompt until end of input (Ctrl-D) or Ctrl-C."""
    while True:
        try:
            yield read(PROMPT)
        except (EOFError, KeyboardInterrupt):
            return
