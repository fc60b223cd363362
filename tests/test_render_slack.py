"""Block Kit rendering: limits at and past the edges, splitting into thread replies, escaping."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from slack_sdk.models.blocks import Block
from test_render_text import make_digest, make_paper

from bot.render_slack import (
    PREVIEW_MORE,
    SLACK_HEADER_TEXT_MAX,
    SLACK_MAX_BLOCKS,
    SLACK_MESSAGE_TEXT_MAX,
    SLACK_SECTION_TEXT_MAX,
    block_text_len,
    escape_mrkdwn,
    render_slack,
    render_slack_reply,
)
from bot.render_text import utf16_len
from bot.replies import PaperCard, Reply
from digests.models import Coverage, DigestItem

HOSTILE = (
    "<!channel> <!here> <@U123> <!subteam^S1> @everyone @here <https://evil.example|arxiv.org> "
    "& < > *bold* _it_ ~strike~ `code` ```fence``` > quote [x](https://evil.example) | pipe"
)
OUR_LINK = re.compile(r"<https://arxiv\.org/abs/[\w./-]+\|[^<>]*>")


def all_texts(payload):
    for block in payload["blocks"]:
        if "text" in block:
            yield block["text"]["text"]
        for element in block.get("elements", ()):
            yield element["text"]
    yield payload["text"]


def assert_within_limits(payload):
    blocks = payload["blocks"]
    for block in blocks:  # slack_sdk's own Block Kit validation, independent of our constants
        Block.parse(block).validate_json()
    assert len(blocks) <= SLACK_MAX_BLOCKS
    assert sum(block_text_len(b) for b in blocks) <= SLACK_MESSAGE_TEXT_MAX
    for block in blocks:
        if block["type"] == "header":
            assert utf16_len(block["text"]["text"]) <= SLACK_HEADER_TEXT_MAX
        elif block["type"] == "section":
            assert 0 < utf16_len(block["text"]["text"]) <= SLACK_SECTION_TEXT_MAX
    assert payload["unfurl_links"] is False and payload["unfurl_media"] is False


def test_digest_main_message_shape():
    [main] = render_slack(make_digest())
    assert_within_limits(main)
    kinds = [b["type"] for b in main["blocks"]]
    assert kinds[0] == "header" and kinds[-1] == "context"
    assert main["blocks"][-1]["elements"][0]["text"].startswith("Scanned 1,204")
    assert main["metadata"]["event_payload"]["digest_id"] == "console:t|2026-W48"
    assert "2 new papers" in main["text"]
    first = main["blocks"][1]["text"]["text"]
    assert first.startswith("*1. <https://arxiv.org/abs/2611.00001|Paper number 1>*")
    assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in first


def test_hostile_paper_text_never_pings_or_links():
    paper = make_paper(title=HOSTILE, abstract=HOSTILE, authors=(HOSTILE,))
    digest = replace(
        make_digest(empty_note=HOSTILE),
        items=(DigestItem(paper, ("rlhf",), 1.0, (HOSTILE,)),),
    )
    payloads = render_slack(digest) + [
        render_slack_reply(
            Reply(
                HOSTILE,
                cards=(PaperCard(paper, why=(HOSTILE,)),),
                suggestions=(HOSTILE,),
            )
        )
    ]
    for payload in payloads:
        for text in all_texts(payload):
            stripped = OUR_LINK.sub("", text)
            assert "<" not in stripped and ">" not in stripped.replace("&gt;", "")
            for markup in ("*bold*", "_it_", "~strike~", "`code`", "```"):
                assert markup not in text
            assert "@everyone" not in text and "@here" not in text
            assert not re.search(r"(^|\n)&gt;", text)


def test_escape_mrkdwn_entities_and_lookalikes():
    assert escape_mrkdwn("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape_mrkdwn("*x* _y_ ~z~ `w`") == "\u2217x\u2217 \u02cdy\u02cd \u223cz\u223c \u02cbw\u02cb"
    assert escape_mrkdwn("> quoted").startswith("\u200b&gt;")
    assert escape_mrkdwn("@channel") == "@\u200bchannel"


@pytest.mark.parametrize(("raw", "escaped"), [
    ("invalid_blocks", "invalid_blocks"),
    ("slack:T1:C1 refused (restricted_action_read_only_channel)", "slack:T1:C1 refused (restricted_action_read_only_channel)"),
    ("x_1_y", "x_1_y"),
    ("_it_", "\u02cdit\u02cd"),
    ("a _b_ c", "a \u02cdb\u02cd c"),
    ("(_b_)", "(\u02cdb\u02cd)"),
    ("snake_ _case", "snake\u02cd \u02cdcase"),
    ("a__b", "a\u02cd\u02cdb"),
    ("\u00e9_x_\u00e9", "\u00e9\u02cdx\u02cd\u00e9"),  # only ASCII letters/digits count as a word here
])
def test_underscores_inside_words_stay_and_ones_that_could_make_italics_do_not(raw, escaped):
    assert escape_mrkdwn(raw) == escaped


def test_notice_digest_says_what_happened_with_codes_intact():
    note = ("This week's digest could not be posted yet (Slack refused the blocks (invalid_blocks)). "
            "I'll keep trying until Mon Nov 30; the admins can see the details with `digestbot status`.")
    notice = make_digest(0, title="Weekly digest: not available", updated=(), classic=None, empty_note=note,
                         status="source_error", coverage=Coverage("failed", "Digest 2026-W48: not delivered yet."))
    [main] = render_slack(notice)
    assert_within_limits(main)
    assert "0 new papers" not in main["text"]
    assert main["text"] == ("Weekly digest: not available. This week's digest could not be posted yet (Slack refused "
                            "the blocks (invalid_blocks)). I'll keep trying until Mon Nov 30; the admins can see "
                            "the details with \u02cbdigestbot status\u02cb.")
    assert "(invalid_blocks)" in main["blocks"][1]["text"]["text"]


def test_quiet_digest_fallback_is_its_note():
    quiet = make_digest(0, title="RLHF papers: week of Nov 23", empty_note="No new papers in RLHF in the days covered.",
                        status="quiet")
    [main] = render_slack(quiet)
    assert main["text"] == "RLHF papers: week of Nov 23. No new papers in RLHF in the days covered."


def test_header_exactly_at_limit_is_kept_and_past_it_is_cut():
    [main] = render_slack(make_digest(title="h" * SLACK_HEADER_TEXT_MAX))
    assert main["blocks"][0]["text"]["text"] == "h" * SLACK_HEADER_TEXT_MAX
    [main] = render_slack(make_digest(title="h" * (SLACK_HEADER_TEXT_MAX + 1)))
    assert main["blocks"][0]["text"]["text"] == "h" * (SLACK_HEADER_TEXT_MAX - 1) + "\u2026"


@pytest.mark.parametrize("unit", ["\U0001f600", "\u6f22", "e\u0301"])
def test_multibyte_titles_fit(unit):
    long = unit * 2000
    paper = make_paper(title=long, abstract=long * 30, authors=(long,))
    digest = make_digest(title=long, items=0)
    digest = replace(digest, items=(DigestItem(paper, ("rlhf",), 1.0, (long,)),))
    for payload in render_slack(digest):
        assert_within_limits(payload)


def test_sixty_thousand_character_abstracts_split_into_thread_replies():
    big = "Sentence without end " * 3000
    items = tuple(
        DigestItem(make_paper(n, abstract=big, title="T" * 5000), ("rlhf",), 1.0, ("S" * 5000,)) for n in range(1, 81)
    )
    digest = make_digest(items=0)
    digest = replace(digest, items=items)
    payloads = render_slack(digest)
    assert len(payloads) > 1
    for payload in payloads:
        assert_within_limits(payload)
    main_blocks = payloads[0]["blocks"]
    assert main_blocks[-1]["type"] == "context"  # the coverage line ends the main message
    numbered = [
        re.match(r"\*(\d+)\. ", b["text"]["text"]) for p in payloads for b in p["blocks"] if b["type"] == "section"
    ]
    assert [int(m.group(1)) for m in numbered if m] == list(range(1, 81))
    assert all("metadata" not in p for p in payloads[1:])


def test_block_count_limit_splits_before_fifty():
    items = tuple(DigestItem(make_paper(n, abstract="Short."), ("rlhf",), 1.0) for n in range(1, 120))
    digest = make_digest(items=0)
    digest = replace(digest, items=items)
    payloads = render_slack(digest)
    assert len(payloads[0]["blocks"]) == SLACK_MAX_BLOCKS
    assert sum(len(p["blocks"]) for p in payloads) == 119 + 4  # header, updated, classic, coverage


def test_reply_payload_is_ephemeral_with_cards_and_suggestions():
    card = PaperCard(
        make_paper(),
        ("rlhf",),
        ("Seed",),
        1.0,
        (("slack:T1:C1", "2026-11-16T09:00:00+00:00"),),
    )
    payload = render_slack_reply(Reply("Best matches:", cards=(card,), suggestions=("rlhf",)))
    assert payload["response_type"] == "ephemeral"
    assert payload["text"] == "Best matches:"
    texts = list(all_texts(payload))
    assert any("Did you mean: rlhf?" in t for t in texts)
    assert any("Already posted in <#C1> on 2026-11-16" in t for t in texts)
    assert render_slack_reply(Reply("ok", ephemeral=False))["response_type"] == "in_channel"


def test_reply_with_huge_preview_stays_within_one_message():
    items = tuple(DigestItem(make_paper(n, abstract="x " * 30000), ("rlhf",), 1.0) for n in range(1, 70))
    digest = make_digest(items=0)
    digest = replace(digest, items=items)
    payload = render_slack_reply(Reply("Preview:\n" + "line\n" * 5000, digest=digest))
    assert_within_limits(payload)
    texts = list(all_texts(render_slack_reply(Reply("Preview:", digest=digest))))
    assert PREVIEW_MORE in texts and texts[-2].startswith("Scanned 1,204")


def test_blank_fields_never_give_empty_text_objects():
    paper = make_paper(title=" \n ", abstract="", authors=())
    digest = replace(
        make_digest(
            title=" ",
            empty_note="\t",
            coverage=replace(make_digest().coverage, text=""),
        ),
        items=(DigestItem(paper, (), 0.0),),
    )
    for payload in render_slack(digest):
        assert all(text.strip() for text in all_texts(payload))
