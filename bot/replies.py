"""The neutral answer every chat command returns (errbot's `Card` idea): no platform payloads here.

`bot.render_text`, `bot.render_slack` and `bot.render_discord` turn a `Reply` (and the `Digest` it may
carry) into console text, Block Kit or Discord embeds.
"""

from __future__ import annotations

from dataclasses import dataclass

from digests.models import Digest, Paper


@dataclass(frozen=True)
class PaperCard:
    """One paper answered by `/paper`: the paper, its themes, why it matched, and where it was already posted."""

    paper: Paper
    themes: tuple[str, ...] = ()
    why: tuple[str, ...] = ()
    """Titles of the one to three nearest seed papers."""
    score: float | None = None
    posted: tuple[tuple[str, str], ...] = ()
    """(channel key, ISO time) pairs from this workspace's digests that already carried the paper."""


@dataclass(frozen=True)
class Reply:
    """What a command answers: plain text (never markup), optional paper cards, an optional digest.

    `text` is written for the user in plain second person; renderers escape it like paper text, so it
    may safely quote what the user typed.
    """

    text: str
    cards: tuple[PaperCard, ...] = ()
    ephemeral: bool = True
    """True when only the person who ran the command should see it."""
    ok: bool = True
    """False when the command failed or was refused; `text` then says why and what to do."""
    digest: Digest | None = None
    """A digest to show under the text (`/digest preview`)."""
    suggestions: tuple[str, ...] = ()
    """Close matches for a typo (subcommands, themes, time zones, paper titles)."""
