"""Pure plain-text rendering of a Digest or a Reply (console, logs, `--dry-run`), plus helpers the
Slack and Discord renderers share: clean paper text, author lines, excerpts, fitting text to a limit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from bot.replies import PaperCard, Reply
from digests.models import Digest, Paper

MAX_AUTHORS = 3
"""Authors shown before "et al."."""
EXCERPT_MAX_CHARS = 240
"""An excerpt is one or two sentences, and never longer than this (a digest reads in under a minute)."""
WHY_MAX = 2
"""Nearest seed papers named in a "why" line."""
ELLIPSIS = "\u2026"

_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+")


def clean(text: str | None) -> str:
    """Return `text` on one line: control and format characters dropped, whitespace collapsed."""
    if not text:
        return ""
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cc" or (cat == "Cf" and ch not in "\u200d\ufe0f"):
            kept.append(" ")
        else:
            kept.append(ch)
    return " ".join("".join(kept).split())


def authors_line(authors: tuple[str, ...] | list[str], limit: int = MAX_AUTHORS) -> str:
    """Return the first `limit` authors joined by commas, plus "et al." when there are more."""
    names = [clean(a) for a in authors if clean(a)]
    if len(names) > limit:
        return ", ".join(names[:limit]) + " et al."
    return ", ".join(names)


def excerpt(text: str | None, max_chars: int = EXCERPT_MAX_CHARS) -> str:
    """Return the first one or two sentences of `text`, cut at a word boundary within `max_chars`."""
    text = clean(text)
    if not text:
        return ""
    sentences = _SENTENCE_END.split(text)
    out = sentences[0]
    if len(sentences) > 1 and len(out) + 1 + len(sentences[1]) <= max_chars:
        out = f"{out} {sentences[1]}"
    return truncate(out, max_chars)


def truncate(text: str, max_chars: int) -> str:
    """Return `text` cut to at most `max_chars` characters, at a word boundary where one is near, with "…"."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 1:
        return ELLIPSIS[:max_chars]
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > max_chars * 0.6:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def pack_parts(
    head: list[dict], body: list[dict], tail: list[dict], fits: Callable[[list[dict]], bool]
) -> list[list[dict]]:
    """Split rendered parts into messages: head + as much body as `fits` + tail first, the rest after.

    Shared by the Slack (blocks) and Discord (embeds) renderers; each passes its own limit check.
    """
    first = list(head)
    rest = list(body)
    while rest and fits(first + [rest[0]] + tail):
        first.append(rest.pop(0))
    messages = [first + tail]
    current: list[dict] = []
    for part in rest:
        if current and not fits(current + [part]):
            messages.append(current)
            current = []
        current.append(part)
    if current:
        messages.append(current)
    return messages


def utf16_len(text: str) -> int:
    """Return the length in UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def fit(
    text: str,
    limit: int,
    escape: Callable[[str], str] = lambda s: s,
    measure: Callable[[str], int] = len,
) -> str:
    """Return `escape(text)` cut so its measured length is at most `limit`, ending in "…" when cut.

    The cut happens on the raw text, so an escape sequence (`&amp;`, `\\*`) is never split.
    """
    escaped = escape(text)
    if measure(escaped) <= limit:
        return escaped
    budget = limit - measure(ELLIPSIS)
    if budget < 0:
        return ""
    out: list[str] = []
    used = 0
    for ch in text:
        piece = escape(ch)
        size = measure(piece)
        if used + size > budget:
            break
        out.append(piece)
        used += size
    return "".join(out).rstrip() + ELLIPSIS


def paper_date(paper: Paper) -> str:
    """Return the paper's date as YYYY-MM-DD (announced, else published), or ""."""
    value = paper.announced or paper.published or ""
    return value[:10]


def paper_meta(paper: Paper, themes: tuple[str, ...]) -> str:
    """Return "authors · date · themes" for one paper, skipping parts it lacks."""
    parts = [authors_line(paper.authors), paper_date(paper)]
    if themes:
        parts.append("themes: " + ", ".join(clean(t) for t in themes))
    return " \u00b7 ".join(p for p in parts if p)


def why_line(why: tuple[str, ...]) -> str:
    """Return "Why: close to “A”, “B”" from the nearest seed paper titles, or ""."""
    names = [clean(w) for w in why[:WHY_MAX] if clean(w)]
    if not names:
        return ""
    return "Why: close to " + ", ".join(_quoted(truncate(n, 90)) for n in names)


def _quoted(title: str) -> str:
    # An untitled paper's display title is already a quoted excerpt; don't nest quotes.
    return title if title.startswith("[untitled]") else f"\u201c{title}\u201d"


def posted_line(posted: tuple[tuple[str, str], ...], label: Callable[[str], str] = clean) -> str:
    """Return "Already posted in <channel> on <date>" for a card, or "".

    `label` turns a channel key into what the platform shows (a `<#C123>` channel link in Slack).
    """
    if not posted:
        return ""
    where = ", ".join(f"{label(ch)} on {clean(at)[:10]}" for ch, at in posted[:3])
    more = f" and {len(posted) - 3} more" if len(posted) > 3 else ""
    return f"Already posted in {where}{more}"


def render_text(obj: Digest | Reply) -> str:
    """Return a Digest or a Reply as plain text for a terminal or a log."""
    if isinstance(obj, Digest):
        return _digest_text(obj)
    lines = [clean_lines(obj.text)]
    if obj.suggestions:
        lines.append("Did you mean: " + ", ".join(clean(s) for s in obj.suggestions) + "?")
    for n, card in enumerate(obj.cards, 1):
        lines.append(_card_text(n, card))
    if obj.digest is not None:
        lines.append(_digest_text(obj.digest))
    return "\n\n".join(line for line in lines if line)


def clean_lines(text: str) -> str:
    """Return multi-line bot text with each line cleaned and blank runs kept to one."""
    return "\n".join(clean(line) for line in (text or "").splitlines()).strip()


def _paper_block(title_prefix: str, paper: Paper, themes: tuple[str, ...], why: tuple[str, ...]) -> list[str]:
    url = f"  <{paper.url}>" if paper.url else ""
    lines = [f"{title_prefix}{clean(paper.display_title)}{url}"]
    for extra in (paper_meta(paper, themes), excerpt(paper.abstract), why_line(why)):
        if extra:
            lines.append("   " + extra)
    return lines


def _card_text(n: int, card: PaperCard) -> str:
    lines = _paper_block(f"{n}. ", card.paper, card.themes, card.why)
    if card.posted:
        lines.append("   " + posted_line(card.posted))
    return "\n".join(lines)


def _digest_text(digest: Digest) -> str:
    out = [clean(digest.title)]
    if digest.empty_note:
        out.append(clean(digest.empty_note))
    for n, item in enumerate(digest.items, 1):
        out.append("\n".join(_paper_block(f"{n}. ", item.paper, item.themes, item.why)))
    if digest.updated:
        out.append("\n".join(["Updated:"] + [f" - {updated_text(u.paper, u.version)}" for u in digest.updated]))
    if digest.classic is not None:
        classic = _paper_block("Classic: ", digest.classic.paper, digest.classic.paper.themes, ())
        since = since_then_line(digest.classic.since_then)
        if since:
            classic.append("   " + since)
        out.append("\n".join(classic))
    out.append(clean(digest.coverage.text))
    return "\n\n".join(part for part in out if part)


def updated_text(paper: Paper, version: int) -> str:
    """Return the one-line "updated" note for a paper with a new version."""
    url = f" <{paper.url}>" if paper.url else ""
    return f"{truncate(clean(paper.display_title), 150)} \u2014 v{version} posted{url}"


def since_then_line(papers: tuple[Paper, ...]) -> str:
    """Return "Since then: “A”, “B”" naming this week's papers nearest to the classic, or ""."""
    if not papers:
        return ""
    return "Since then: " + ", ".join(_quoted(truncate(clean(p.display_title), 90)) for p in papers[:3])
