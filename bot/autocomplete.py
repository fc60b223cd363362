"""Autocomplete for Discord's typed options: papers, themes, time zones and days."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.command_table import find_command
from bot.digest_cmd import DAY_WORDS, time_zones

if TYPE_CHECKING:
    from digests.models import Paper
    from digests.service import Core

# Logged under "bot.commands", as before the split, so log filters and captures keep matching.
log = logging.getLogger("bot.commands")

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
        return [(d, d[:3].lower()) for d in DAY_WORDS if d.lower().startswith(partial.lower()[:3])][:MAX_CHOICES]
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
    zones = time_zones()
    starts = [z for z in zones if z.casefold().startswith(folded) or z.casefold().rsplit("/", 1)[-1].startswith(folded)]
    inside = [z for z in zones if folded in z.casefold() and z not in starts]
    return [_choice(z, z) for z in (starts + inside)[:MAX_CHOICES]]
