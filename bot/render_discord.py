"""Pure Discord rendering of a Digest or a Reply: `{"content", "embeds", "allowed_mentions"}` dicts,
no SDK import (adapters call `discord.Embed.from_dict`).

Paper text is data, never markup: Markdown characters are backslash-escaped, `@everyone`/`@here`
are broken with a zero-width space, and every payload carries `allowed_mentions: {"parse": []}` so
nothing can ping. Lengths are measured in UTF-16 code units, never less than what Discord counts.
Limits: https://discord.com/developers/docs/resources/message#embed-object-embed-limits
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

DISCORD_CONTENT_MAX = 2000
"""Message `content`. https://discord.com/developers/docs/resources/message#create-message"""
DISCORD_EMBED_TITLE_MAX = 256
DISCORD_EMBED_DESCRIPTION_MAX = 4096
DISCORD_FIELD_NAME_MAX = 256
DISCORD_FIELD_VALUE_MAX = 1024
DISCORD_FOOTER_TEXT_MAX = 2048
DISCORD_AUTHOR_NAME_MAX = 256
DISCORD_FIELDS_MAX = 25
DISCORD_EMBEDS_MAX = 10
"""Embeds per message. https://discord.com/developers/docs/resources/message#create-message"""
DISCORD_EMBEDS_TOTAL_MAX = 6000
"""Title + description + field names/values + footer + author name, summed over a message's embeds."""
ALLOWED_MENTIONS_NONE: dict[str, list[str]] = {"parse": []}
"""https://discord.com/developers/docs/resources/message#allowed-mentions-object"""
LINE_MAX = 400
COLOR_PAPER = 0x4F6BED
COLOR_NOTE = 0x99AAB5

PREVIEW_MORE = "More papers follow in a follow-up message when this digest is posted."

_ALWAYS = set("\\*_~|`[]<>")
_LINE_START = re.compile(r"^(\s*)([#>+\-]|\d+\.)")
_BROADCAST = re.compile(r"@(everyone|here)\b", re.IGNORECASE)
_SAFE_URL = re.compile(r"^https://[\w.\-/~%:+]+$")


def escape_markdown(text: str) -> str:
    """Return `text` safe in Discord Markdown: formatting, links, mentions and line markers shown literally."""
    out = "".join("\\" + ch if ch in _ALWAYS else ch for ch in text)
    out = _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), out)
    return _BROADCAST.sub("@\u200b\\1", out)


def escape_plain(text: str) -> str:
    """Return `text` for fields Discord shows without Markdown (footer, author): only broadcasts broken."""
    return _BROADCAST.sub("@\u200b\\1", text)


def _esc(text: str, limit: int) -> str:
    return fit(clean(text), limit, escape_markdown, utf16_len)


def embed_len(embed: dict[str, Any]) -> int:
    """Return an embed's counted length (as `discord.Embed.__len__`, but in UTF-16 units)."""
    total = utf16_len(embed.get("title", "")) + utf16_len(embed.get("description", ""))
    for f in embed.get("fields", ()):
        total += utf16_len(f["name"]) + utf16_len(f["value"])
    total += utf16_len(embed.get("footer", {}).get("text", ""))
    total += utf16_len(embed.get("author", {}).get("name", ""))
    return total


def _paper_embed(
    paper: Paper,
    themes: tuple[str, ...],
    why: tuple[str, ...],
    prefix: str = "",
    extra: str = "",
) -> dict:
    title = _esc(paper.display_title, DISCORD_EMBED_TITLE_MAX - len(prefix)) or "(untitled)"
    embed: dict[str, Any] = {"title": prefix + title, "color": COLOR_PAPER}
    if paper.url and _SAFE_URL.match(paper.url):
        embed["url"] = paper.url
    lines = [_esc(part, LINE_MAX) for part in (paper_meta(paper, themes), excerpt(paper.abstract)) if part]
    lines += [f"*{_esc(part, LINE_MAX)}*" for part in (why_line(why), extra) if part]
    embed["description"] = "\n".join(lines) or "\u200b"
    return embed


_DISCORD_CHANNEL = re.compile(r"^discord:[0-9]+:([0-9]+)$")


def channel_label(key: str) -> str:
    """Return a Discord channel key as a `<#123>` channel link (never a ping), anything else escaped."""
    match = _DISCORD_CHANNEL.match(key)
    return f"<#{match.group(1)}>" if match else escape_markdown(clean(key))


def card_embed(card: PaperCard) -> dict[str, Any]:
    """Return the embed for one `/paper` card."""
    embed = _paper_embed(card.paper, card.themes, card.why)
    if card.posted:
        embed["description"] += f"\n*{posted_line(card.posted, channel_label)}*"
    return embed


def _digest_embeds(digest: Digest) -> tuple[list[dict], dict]:
    """Return (body embeds, closing embed with the coverage line in its footer)."""
    body = [_paper_embed(i.paper, i.themes, i.why, prefix=f"{n}. ") for n, i in enumerate(digest.items, 1)]
    if digest.updated:
        lines = []
        for u in digest.updated:
            label = _esc(u.paper.display_title, 150)
            link = f"[{label}]({u.paper.url})" if u.paper.url and _SAFE_URL.match(u.paper.url) else label
            lines.append(f"\u2022 {link} \u2014 v{u.version} posted")
        body.append(
            {
                "title": "Updated",
                "description": _join_within(lines, DISCORD_EMBED_DESCRIPTION_MAX),
                "color": COLOR_NOTE,
            }
        )
    if digest.classic is not None:
        c = digest.classic
        body.append(
            _paper_embed(
                c.paper,
                c.paper.themes,
                (),
                prefix="Classic: ",
                extra=since_then_line(c.since_then),
            )
        )
    closing: dict[str, Any] = {
        "color": COLOR_NOTE,
        "footer": {
            "text": fit(
                clean(digest.coverage.text),
                DISCORD_FOOTER_TEXT_MAX,
                escape_plain,
                utf16_len,
            )
            or "\u200b"
        },
    }
    if clean(digest.empty_note):
        closing["description"] = _esc(digest.empty_note or "", DISCORD_EMBED_DESCRIPTION_MAX)
    return body, closing


def _join_within(lines: list[str], limit: int) -> str:
    out: list[str] = []
    for line in lines:
        if utf16_len("\n".join(out + [line])) > limit:
            break
        out.append(line)
    return "\n".join(out) or "\u200b"


def _fits(embeds: list[dict]) -> bool:
    return len(embeds) <= DISCORD_EMBEDS_MAX and sum(map(embed_len, embeds)) <= DISCORD_EMBEDS_TOTAL_MAX


def pack_embeds(head: list[dict], body: list[dict], tail: list[dict]) -> list[list[dict]]:
    """Return messages' embeds: head + as much body as fits + tail first, the rest in follow-ups."""
    return pack_parts(head, body, tail, _fits)


def _message(content: str, embeds: list[dict]) -> dict[str, Any]:
    return {
        "content": content,
        "embeds": embeds,
        "allowed_mentions": dict(ALLOWED_MENTIONS_NONE),
    }


def render_discord(digest: Digest) -> list[dict[str, Any]]:
    """Return message payloads: the main message first (ending with the coverage line), then follow-ups."""
    body, closing = _digest_embeds(digest)
    messages = pack_embeds([], body, [closing])
    title = f"**{_esc(digest.title, DISCORD_CONTENT_MAX - 4) or 'Paper digest'}**"
    out = [_message(title, messages[0])]
    out += [
        _message(
            f"{title} (continued)" if utf16_len(title) < DISCORD_CONTENT_MAX - 12 else "",
            m,
        )
        for m in messages[1:]
    ]
    return out


def render_discord_reply(reply: Reply) -> dict[str, Any]:
    """Return one message payload for a command reply (the adapter sends it ephemeral when asked)."""
    lines = [_esc(line, LINE_MAX) for line in clean_lines(reply.text).splitlines()]
    if reply.suggestions:
        lines.append("Did you mean: " + _esc(", ".join(reply.suggestions), LINE_MAX) + "?")
    content = _join_within(lines, DISCORD_CONTENT_MAX) if lines else ""
    embeds = [card_embed(card) for card in reply.cards]
    rest = lines[len(content.splitlines()) :] if lines else []
    if rest:  # a long list (many themes) continues in an embed rather than being cut
        embeds.insert(0, {"description": _join_within(rest, DISCORD_EMBED_DESCRIPTION_MAX), "color": COLOR_NOTE})
    if reply.digest is not None:
        body, closing = _digest_embeds(reply.digest)
        content = _join_within(
            content.splitlines() + [f"**{_esc(reply.digest.title, 200)}**"],
            DISCORD_CONTENT_MAX,
        )
        messages = pack_embeds(embeds, body, [closing])
        if len(messages) > 1:
            more = {"description": PREVIEW_MORE, "color": COLOR_NOTE}
            messages = pack_embeds(embeds, body, [more, closing])
        embeds = messages[0]
    while not _fits(embeds):
        embeds.pop(-2 if len(embeds) > 1 else -1)
    return _message(content, embeds)
