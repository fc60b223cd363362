"""Plain-text rendering and the helpers the Slack and Discord renderers share."""

from __future__ import annotations

import pytest

from bot.render_text import (
    EXCERPT_MAX_CHARS,
    authors_line,
    clean,
    excerpt,
    fit,
    render_text,
    truncate,
    utf16_len,
)
from bot.replies import PaperCard, Reply
from digests.models import Classic, Coverage, Digest, DigestItem, Paper, UpdatedItem


def make_paper(n: int = 1, **kw) -> Paper:
    values = {
        "title": f"Paper number {n}",
        "abstract": "We study things. The results are good. A third sentence nobody reads.",
        "authors": ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"),
        "arxiv_id": f"2611.{n:05d}",
        "announced": "2026-11-20",
    }
    values.update(kw)
    return Paper(**values)


def make_digest(items: int = 2, **kw) -> Digest:
    values = {
        "id": "console:t|2026-W48",
        "channel": "console:t",
        "week": "2026-W48",
        "title": "RLHF papers: week of Nov 23",
        "themes": ("rlhf",),
        "items": tuple(
            DigestItem(make_paper(n), ("rlhf",), 1.0, ("Seed paper A", "Seed paper B")) for n in range(1, items + 1)
        ),
        "coverage": Coverage("ok", "Scanned 1,204 cs.CL/cs.LG papers from arXiv, Nov 16-22."),
        "generated_at": "2026-11-25T12:00:00+00:00",
        "updated": (UpdatedItem(make_paper(90, title="Old paper"), 2),),
        "classic": Classic(make_paper(91, title="A classic", arxiv_id=None), (make_paper(1),)),
    }
    values.update(kw)
    return Digest(**values)


def test_render_text_digest_has_every_part_and_ends_with_coverage():
    text = render_text(make_digest())
    assert text.startswith("RLHF papers: week of Nov 23")
    assert "1. Paper number 1  <https://arxiv.org/abs/2611.00001>" in text
    assert "Ada Lovelace, Alan Turing, Grace Hopper et al." in text
    assert "We study things. The results are good." in text and "third sentence" not in text
    assert "Why: close to \u201cSeed paper A\u201d, \u201cSeed paper B\u201d" in text
    assert "Old paper \u2014 v2 posted" in text
    assert "Classic: A classic" in text and "Since then: \u201cPaper number 1\u201d" in text
    assert text.splitlines()[-1] == "Scanned 1,204 cs.CL/cs.LG papers from arXiv, Nov 16-22."


def test_render_text_empty_week_says_so():
    digest = make_digest(0, updated=(), classic=None, empty_note="No new papers in RLHF this week.")
    assert render_text(digest).splitlines()[2] == "No new papers in RLHF this week."


def test_render_text_reply_with_cards_and_suggestions():
    card = PaperCard(
        make_paper(),
        ("rlhf",),
        ("Seed",),
        3.0,
        (("slack:T1:C1", "2026-11-16T09:00:00+00:00"),),
    )
    text = render_text(Reply("Best matches:", cards=(card,), suggestions=("rlhf",)))
    assert "Did you mean: rlhf?" in text
    assert "Already posted in slack:T1:C1 on 2026-11-16" in text


def test_untitled_paper_shows_marked_excerpt():
    text = render_text(Reply("x", cards=(PaperCard(make_paper(title=None, abstract="Some words here")),)))
    assert "[untitled] \u201cSome words here\u2026\u201d" in text


def test_clean_drops_control_characters_and_terminal_escapes():
    assert clean("a\x1b[31mred\x00\u200b b\n\tc") == "a [31mred b c"


def test_authors_line_first_three_then_et_al():
    assert authors_line(("A", "B", "C")) == "A, B, C"
    assert authors_line(("A", "B", "C", "D")) == "A, B, C et al."
    assert authors_line(()) == ""


def test_excerpt_of_60000_character_abstract_is_short():
    abstract = ("word " * 12_000).strip()
    out = excerpt(abstract)
    assert len(out) <= EXCERPT_MAX_CHARS and out.endswith("\u2026")


@pytest.mark.parametrize("limit", [1, 2, 10, 100])
def test_truncate_never_exceeds_limit(limit):
    assert len(truncate("x" * 500, limit)) <= limit


def test_fit_at_exact_limit_is_unchanged_and_past_it_is_cut():
    assert fit("a" * 10, 10) == "a" * 10
    assert fit("a" * 11, 10) == "a" * 9 + "\u2026"


def test_fit_never_splits_an_escape_sequence():
    out = fit("&" * 10, 12, lambda s: s.replace("&", "&amp;"))
    assert out == "&amp;&amp;\u2026"


def test_fit_counts_utf16_for_emoji():
    out = fit("\U0001f600" * 10, 7, measure=utf16_len)
    assert utf16_len(out) <= 7 and out == "\U0001f600" * 3 + "\u2026"


def test_why_line_does_not_nest_quotes_for_untitled_papers():
    from bot.render_text import why_line

    assert why_line(("[untitled] \u201cSome words\u2026\u201d", "Real title")) == (
        "Why: close to [untitled] \u201cSome words\u2026\u201d, \u201cReal title\u201d"
    )
