"""Pure Block Kit rendering of a Digest or a Reply: plain dicts for `chat.postMessage`, no SDK import.

Paper text is data, never markup: `&`, `<` and `>` become entities (so `<!channel>`, `<@U123>` and
`<https://x|y>` can't ping or forge a link), and mrkdwn's formatting characters become look-alikes.
Lengths are measured in UTF-16 code units, which is never less than what Slack counts.
"""

from __future__ import annotations

import re
from typing import Any

from bot.render_text import (
    clean,
    clean_lines,
    excerpt,
    fit,
    pack_parts,
    paper_meta,
    posted_line,
    since_then_line,
    utf16_len,
    why_line,
)
from bot.replies import PaperCard, Reply
from digests.models import Digest, Paper

SLACK_MAX_BLOCKS = 50
"""Blocks per message. https://api.slack.com/reference/block-kit/blocks"""
SLACK_SECTION_TEXT_MAX = 3000
"""Section block `text`. https://api.slack.com/reference/block-kit/blocks#section"""
SLACK_HEADER_TEXT_MAX = 150
"""Header block `text`. https://api.slack.com/reference/block-kit/blocks#header"""
SLACK_CONTEXT_TEXT_MAX = 3000
"""A text object inside a context block. https://api.slack.com/reference/block-kit/composition-objects#text"""
SLACK_MESSAGE_TEXT_MAX = 12_000
"""Block text per message; more goes into thread replies (issue #5; Slack caps markdown blocks at
12,000 cumulative characters: https://api.slack.com/reference/block-kit/blocks#markdown)."""
SLACK_FALLBACK_TEXT_MAX = 4000
"""Top-level `text` (notifications, fallback). https://api.slack.com/methods/chat.postMessage#truncating"""
TITLE_MAX = 300
"""A paper title inside a section; keeps every paper section far below SLACK_SECTION_TEXT_MAX."""
LINE_MAX = 400

PREVIEW_MORE = "More papers follow in a thread reply when this digest is posted."

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# mrkdwn has no escape character, so formatting characters become look-alikes (∗ ˍ ∼ ˋ).
_LOOKALIKES = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}
# Slack only opens or closes _italics_ at a word boundary, so a "_" between two letters/digits
# (invalid_blocks, snake_case ids) stays itself: no look-alike mangling codes people may copy.
_INWORD_UNDERSCORE = re.compile(r"(?<=[A-Za-z0-9])_(?=[A-Za-z0-9])")
_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_SAFE_URL = re.compile(r"^https://[\w.\-/~%:+]+$")


def escape_mrkdwn(text: str) -> str:
    """Return `text` safe inside mrkdwn: no mentions, links, formatting or leading blockquote."""
    inword = {m.start() for m in _INWORD_UNDERSCORE.finditer(text)}
    out = "".join("_" if i in inword else _ENTITIES.get(ch) or _LOOKALIKES.get(ch) or ch for i, ch in enumerate(text))
    out = _BROADCAST.sub("@\u200b\\1", out)
    return "\u200b" + out if out.startswith("&gt;") else out


def _esc(text: str, limit: int) -> str:
    return fit(clean(text), limit, escape_mrkdwn, utf16_len)


def _link(url: str | None, label: str) -> str:
    if url and _SAFE_URL.match(url):
        return f"<{url}|{label}>"
    return label


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _paper_section(
    prefix: str,
    paper: Paper,
    themes: tuple[str, ...],
    why: tuple[str, ...],
    extra: str = "",
) -> dict:
    title = _esc(paper.display_title, TITLE_MAX) or "(untitled)"
    lines = [f"*{prefix}{_link(paper.url, title)}*"]
    for part in (
        paper_meta(paper, themes),
        excerpt(paper.abstract),
        why_line(why),
        extra,
    ):
        if part:
            lines.append(_esc(part, LINE_MAX))
    return _section("\n".join(lines))


_SLACK_CHANNEL = re.compile(r"^slack:[A-Z0-9]+:([A-Z0-9]+)$")


def channel_label(key: str) -> str:
    """Return a Slack channel key as a `<#C123>` channel link (never a ping), anything else escaped."""
    match = _SLACK_CHANNEL.match(key)
    return f"<#{match.group(1)}>" if match else escape_mrkdwn(clean(key))


def card_block(n: int, card: PaperCard) -> dict[str, Any]:
    """Return the section block for one `/paper` card."""
    section = _paper_section(f"{n}. ", card.paper, card.themes, card.why)
    if card.posted:
        section["text"]["text"] += "\n" + posted_line(card.posted, channel_label)
    return section


def block_text_len(block: dict[str, Any]) -> int:
    """Return the UTF-16 length of the text a block carries (header, section, context)."""
    total = 0
    if "text" in block:
        total += utf16_len(block["text"]["text"])
    for element in block.get("elements", ()):
        total += utf16_len(element.get("text", ""))
    return total


def _digest_blocks(digest: Digest) -> tuple[list[dict], list[dict], dict]:
    """Return (head blocks, body blocks, coverage block) for a digest."""
    title = fit(clean(digest.title) or "Paper digest", SLACK_HEADER_TEXT_MAX, measure=utf16_len)
    head: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    if clean(digest.empty_note):
        head.append(_section(_esc(digest.empty_note or "", LINE_MAX)))
    body = [_paper_section(f"{n}. ", i.paper, i.themes, i.why) for n, i in enumerate(digest.items, 1)]
    if digest.updated:
        lines = ["*Updated*"]
        for u in digest.updated:
            label = _esc(u.paper.display_title, 150)
            lines.append(f"\u2022 {_link(u.paper.url, label)} \u2014 v{u.version} posted")
        body.extend(_split_section_lines(lines))
    if digest.classic is not None:
        c = digest.classic
        body.append(_paper_section("Classic: ", c.paper, c.paper.themes, (), since_then_line(c.since_then)))
    # Slack rejects empty text objects, so a digest without a coverage text still says so.
    coverage = _context(_esc(digest.coverage.text or "Coverage unknown.", SLACK_CONTEXT_TEXT_MAX))
    return head, body, coverage


def _split_section_lines(lines: list[str]) -> list[dict]:
    """Pack short mrkdwn lines into as few sections as the section limit allows."""
    sections: list[dict] = []
    current: list[str] = []
    for line in lines:
        if current and utf16_len("\n".join(current + [line])) > SLACK_SECTION_TEXT_MAX:
            sections.append(_section("\n".join(current)))
            current = []
        current.append(line)
    if current:
        sections.append(_section("\n".join(current)))
    return sections


def _fits(blocks: list[dict], extra: dict | None = None) -> bool:
    candidate = blocks + ([extra] if extra else [])
    return len(candidate) <= SLACK_MAX_BLOCKS and sum(map(block_text_len, candidate)) <= SLACK_MESSAGE_TEXT_MAX


def pack_blocks(head: list[dict], body: list[dict], tail: list[dict]) -> list[list[dict]]:
    """Return messages' blocks: head + as much body as fits + tail first, the rest in further messages."""
    return pack_parts(head, body, tail, _fits)


def digest_fallback(digest: Digest) -> str:
    """Return the short notification text for a digest's main message."""
    count = len(digest.items)
    title, note = clean(digest.title), clean(digest.empty_note)
    if not count and note:  # a notice or a quiet week: its note says what happened, "0 new papers" would not
        summary = f"{title}{' ' if title.endswith(('.', '!', '?')) else '. '}{note}" if title else note
    else:
        summary = f"{title}: {count} new paper{'s' if count != 1 else ''}. {clean(digest.coverage.text)}"
    return fit(summary, SLACK_FALLBACK_TEXT_MAX, escape_mrkdwn, utf16_len)


def render_slack(digest: Digest) -> list[dict[str, Any]]:
    """Return chat.postMessage payloads: the main message first, overflow as thread replies after it.

    The main message carries `metadata` with the digest id (for finding it again after a crash).
    """
    head, body, coverage = _digest_blocks(digest)
    messages = pack_blocks(head, body, [coverage])
    payloads = []
    for n, blocks in enumerate(messages):
        text = digest_fallback(digest) if n == 0 else f"{_esc(digest.title, 200)} (continued)"
        payloads.append(
            {
                "text": text,
                "blocks": blocks,
                "unfurl_links": False,
                "unfurl_media": False,
            }
        )
    payloads[0]["metadata"] = {
        "event_type": "digestbot_digest",
        "event_payload": {"digest_id": digest.id},
    }
    return payloads


def render_slack_reply(reply: Reply) -> dict[str, Any]:
    """Return one message payload for a command reply (for `respond`/`chat.postEphemeral`)."""
    text = clean_lines(reply.text)
    lines = [_esc(line, LINE_MAX) if line else "" for line in text.splitlines()]
    blocks = _split_section_lines(lines) if text else []
    if reply.suggestions:
        blocks.append(_context(_esc("Did you mean: " + ", ".join(reply.suggestions) + "?", LINE_MAX)))
    blocks.extend(card_block(n, card) for n, card in enumerate(reply.cards, 1))
    if reply.digest is not None:
        head, body, coverage = _digest_blocks(reply.digest)
        messages = pack_blocks(blocks + head, body, [coverage])
        if len(messages) > 1:
            messages = pack_blocks(blocks + head, body, [_context(PREVIEW_MORE), coverage])
        blocks = messages[0]
    while not _fits(blocks):
        blocks.pop(-2 if len(blocks) > 1 else -1)
    fallback = fit(
        text.splitlines()[0] if text else "digestbot",
        SLACK_FALLBACK_TEXT_MAX,
        escape_mrkdwn,
        utf16_len,
    )
    return {
        "text": fallback,
        "blocks": blocks,
        "response_type": "ephemeral" if reply.ephemeral else "in_channel",
        "unfurl_links": False,
        "unfurl_media": False,
    }
