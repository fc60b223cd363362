"""Discord rendering: embeds validated by discord.py itself, limits at and past the edges, escaping."""

from __future__ import annotations

import re
from dataclasses import replace

import discord
import pytest
from test_render_text import make_digest, make_paper

from bot.render_discord import (
    DISCORD_AUTHOR_NAME_MAX,
    DISCORD_CONTENT_MAX,
    DISCORD_EMBED_DESCRIPTION_MAX,
    DISCORD_EMBED_TITLE_MAX,
    DISCORD_EMBEDS_MAX,
    DISCORD_EMBEDS_TOTAL_MAX,
    DISCORD_FIELD_NAME_MAX,
    DISCORD_FIELD_VALUE_MAX,
    DISCORD_FIELDS_MAX,
    DISCORD_FOOTER_TEXT_MAX,
    PREVIEW_MORE,
    card_embed,
    escape_markdown,
    render_discord,
    render_discord_reply,
)
from bot.render_text import utf16_len
from bot.replies import PaperCard, Reply
from digests.models import DigestItem

HOSTILE = (
    "<@123456789012345678> <@&123456789012345678> <#1> @everyone @here <!channel> "
    "*bold* _it_ __u__ ~~s~~ ||spoiler|| `code` ```fence``` > quote # head - item [x](https://evil.example)"
)


def assert_within_limits(message):
    assert utf16_len(message["content"]) <= DISCORD_CONTENT_MAX
    assert message["allowed_mentions"] == {"parse": []}
    embeds = [discord.Embed.from_dict(e) for e in message["embeds"]]
    assert 0 < len(embeds) <= DISCORD_EMBEDS_MAX or (not embeds and message["content"])
    assert sum(len(e) for e in embeds) <= DISCORD_EMBEDS_TOTAL_MAX
    assert (
        sum(utf16_len(str(e.title or "")) + utf16_len(str(e.description or "")) for e in embeds)
        <= DISCORD_EMBEDS_TOTAL_MAX
    )
    for raw, embed in zip(message["embeds"], embeds):
        assert utf16_len(raw.get("title", "")) <= DISCORD_EMBED_TITLE_MAX
        assert utf16_len(raw.get("description", "")) <= DISCORD_EMBED_DESCRIPTION_MAX
        assert utf16_len(raw.get("footer", {}).get("text", "")) <= DISCORD_FOOTER_TEXT_MAX
        assert utf16_len(raw.get("author", {}).get("name", "")) <= DISCORD_AUTHOR_NAME_MAX
        assert len(raw.get("fields", ())) <= DISCORD_FIELDS_MAX
        for field in raw.get("fields", ()):
            assert len(field["name"]) <= DISCORD_FIELD_NAME_MAX and len(field["value"]) <= DISCORD_FIELD_VALUE_MAX
        assert embed.to_dict().get("description") == raw.get("description")


def test_digest_main_message_shape():
    [main] = render_discord(make_digest())
    assert_within_limits(main)
    assert main["content"] == "**RLHF papers: week of Nov 23**"
    first = main["embeds"][0]
    assert first["title"] == "1. Paper number 1" and first["url"] == "https://arxiv.org/abs/2611.00001"
    assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in first["description"]
    assert main["embeds"][-1]["footer"]["text"].startswith("Scanned 1,204")
    titles = [e.get("title") for e in main["embeds"]]
    assert "Updated" in titles and "Classic: A classic" in titles


def test_hostile_text_is_escaped_and_never_pings():
    paper = make_paper(title=HOSTILE, abstract=HOSTILE, authors=(HOSTILE,))
    digest = replace(
        make_digest(title=HOSTILE, empty_note=HOSTILE),
        items=(DigestItem(paper, ("rlhf",), 1.0, (HOSTILE,)),),
    )
    reply = Reply(HOSTILE, cards=(PaperCard(paper, why=(HOSTILE,)),), suggestions=(HOSTILE,))
    for message in render_discord(digest) + [render_discord_reply(reply)]:
        assert_within_limits(message)
        texts = [message["content"]] + [e.get(k, "") for e in message["embeds"] for k in ("title", "description")]
        for text in texts:
            assert "@everyone" not in text and "@here" not in text
            assert not re.search(r"(?<!\\)<[@#]", text)
            assert not re.search(r"(?<!\\)\[x(?<!\\)\]", text)
            assert "*bold*" not in text and "`code`" not in text and "||spoiler||" not in text


def test_escape_markdown():
    assert escape_markdown("*a* _b_ [c](d) <@1>") == "\\*a\\* \\_b\\_ \\[c\\](d) \\<@1\\>"
    assert escape_markdown("# head") == "\\# head"
    assert escape_markdown("- item") == "\\- item"
    assert escape_markdown("1. first") == "\\1. first"
    assert escape_markdown("@everyone") == "@\u200beveryone"
    assert escape_markdown("state-of-the-art") == "state-of-the-art"


def test_title_exactly_at_limit_is_kept_and_past_it_is_cut():
    exact = card_embed(PaperCard(make_paper(title="t" * DISCORD_EMBED_TITLE_MAX)))
    assert exact["title"] == "t" * DISCORD_EMBED_TITLE_MAX
    past = card_embed(PaperCard(make_paper(title="t" * (DISCORD_EMBED_TITLE_MAX + 1))))
    assert past["title"] == "t" * (DISCORD_EMBED_TITLE_MAX - 1) + "\u2026"


@pytest.mark.parametrize("unit", ["\U0001f600", "\u6f22", "\U0001f469\u200d\U0001f4bb", "*"])
def test_multibyte_and_escaped_titles_fit(unit):
    long = unit * 3000
    paper = make_paper(title=long, abstract=long * 20, authors=(long,))
    digest = replace(
        make_digest(title=long, empty_note=long),
        items=(DigestItem(paper, ("rlhf",), 1.0, (long,)),) * 12,
    )
    for message in render_discord(digest):
        assert_within_limits(message)


def test_sixty_thousand_character_abstracts_go_into_follow_ups():
    big = "Sentence without end " * 3000
    items = tuple(
        DigestItem(make_paper(n, abstract=big, title="T" * 400), ("rlhf",), 1.0, ("S" * 5000,)) for n in range(1, 41)
    )
    messages = render_discord(replace(make_digest(), items=items))
    assert len(messages) > 1
    for message in messages:
        assert_within_limits(message)
    assert "footer" in messages[0]["embeds"][-1]  # the coverage line ends the main message
    numbers = [int(e["title"].split(".")[0]) for m in messages for e in m["embeds"] if e.get("title", "")[:1].isdigit()]
    assert numbers == list(range(1, 41))
    assert messages[1]["content"].endswith("(continued)")


def test_embed_count_limit_splits_at_ten():
    items = tuple(DigestItem(make_paper(n, abstract="Short."), ("rlhf",), 1.0) for n in range(1, 30))
    messages = render_discord(replace(make_digest(), items=items))
    assert len(messages[0]["embeds"]) == DISCORD_EMBEDS_MAX
    assert sum(len(m["embeds"]) for m in messages) == 29 + 3  # updated, classic, coverage


def test_reply_with_cards_suggestions_and_preview():
    card = PaperCard(
        make_paper(),
        ("rlhf",),
        ("Seed",),
        1.0,
        (("discord:1:2", "2026-11-16T09:00:00+00:00"),),
    )
    message = render_discord_reply(Reply("Best matches:", cards=(card,), suggestions=("rlhf",)))
    assert_within_limits(message)
    assert message["content"] == "Best matches:\nDid you mean: rlhf?"
    assert "Already posted in <#2> on 2026-11-16" in message["embeds"][0]["description"]
    items = tuple(DigestItem(make_paper(n, abstract="x " * 30000), ("rlhf",), 1.0) for n in range(1, 40))
    preview = render_discord_reply(Reply("Preview:\n" + "line\n" * 3000, digest=replace(make_digest(), items=items)))
    assert_within_limits(preview)
    assert preview["embeds"][-2]["description"] == PREVIEW_MORE and "footer" in preview["embeds"][-1]


def test_empty_reply_text_is_allowed_with_embeds():
    message = render_discord_reply(Reply("", cards=(PaperCard(make_paper()),)))
    assert message["content"] == "" and len(message["embeds"]) == 1


def test_blank_fields_never_give_empty_titles():
    paper = make_paper(title=" \n ", abstract="", authors=())
    digest = replace(make_digest(title=" ", empty_note="\t"), items=(DigestItem(paper, (), 0.0),))
    [main] = render_discord(digest)
    assert main["content"] == "**Paper digest**"
    assert all(e.get("title", "x").strip() for e in main["embeds"])
    assert "description" not in main["embeds"][-1]


def test_long_reply_text_continues_in_an_embed():
    lines = [f"\u2022 theme-{n}: " + "a fairly long description of the theme " * 3 for n in range(40)]
    message = render_discord_reply(Reply("\n".join(lines)))
    assert_within_limits(message)
    shown = message["content"].splitlines() + message["embeds"][0]["description"].splitlines()
    assert len(shown) == 40 and shown[-1].startswith("\u2022 theme-39")
