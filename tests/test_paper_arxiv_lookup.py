"""`/paper <arXiv id>` for an id the catalog lacks: the paper arXiv returns is stored and scored, a missing id
is remembered for an hour, errors are never remembered, and an old paper looked up today is not "new".

Everything runs against the loopback fake arXiv of test_arxiv_api (it records every request it gets) with
real recorded arXiv responses; the clock is the core's injected one, so nothing sleeps.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from test_arxiv_api import FakeArxiv, build_feed, ok, real, real_entries

from bot.commands import Invocation, run_text
from digests import catalog, channels
from digests.arxiv_feed import parse_atom
from digests.build import build_digest
from digests.fetch import MISSING_ID_TTL
from digests.match import score_and_store

FOUND = "arxiv_api_2026_idlist_1706.03762_v7_multiversion.xml"
MISSING = "arxiv_api_2026_idlist_0000.0000_empty_result.xml"
KEY = "slack:T1:C1"


@pytest.fixture
def arxiv():
    fake = FakeArxiv()
    yield fake
    fake.close()


class Clock:
    """The core's clock, moved by hand."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock(fixed_now):
    return Clock(fixed_now)


@pytest.fixture
def core(fresh_core, arxiv, clock):
    # The loopback arXiv, with no politeness delay so the test never waits (the lookup client is the real one).
    fresh_core.settings = replace(fresh_core.settings, arxiv_api_url=arxiv.url, arxiv_delay_seconds=0.0)
    fresh_core.clock = clock
    return fresh_core


def paper(core, clock, text):
    inv = Invocation(platform="slack", channel=KEY, user="U1", can_manage=True, now=clock())
    return run_text(core, inv, "paper", text)


def test_found_paper_is_stored_scored_and_answered_from_the_catalog_next_time(core, arxiv, clock):
    arxiv.replies.append(ok(real(FOUND)))
    first = paper(core, clock, "1706.03762")
    assert first.ok, first.text
    assert first.text == "arXiv 1706.03762 (found on arXiv and added to the catalog):"
    assert first.cards[0].paper.title == "Attention Is All You Need"
    assert len(arxiv.requests) == 1

    stored = catalog.get_by_arxiv_id(core, "1706.03762")
    assert stored is not None and stored.origin == "arxiv" and stored.version == 7
    scores = catalog.scores_for(core, stored.id)
    assert {s.theme for s in scores} == {t.name for t in core.themes}

    again = paper(core, clock, "arXiv:1706.03762")
    assert again.ok and again.text == "arXiv 1706.03762:"
    assert again.cards[0].paper.id == stored.id
    assert len(arxiv.requests) == 1  # answered from the catalog: no HTTP request


def test_missing_id_is_remembered_for_an_hour(core, arxiv, clock):
    arxiv.handler = lambda params: ok(real(MISSING))
    answer = "arXiv has no paper 0000.0000; check the id."
    first = paper(core, clock, "0000.0000")
    assert not first.ok and first.text == answer
    assert len(arxiv.requests) == 1

    clock.now += MISSING_ID_TTL - timedelta(seconds=1)
    second = paper(core, clock, "0000.0000")
    assert not second.ok and second.text == answer
    assert len(arxiv.requests) == 1  # within the hour: no request
    assert catalog.get_by_arxiv_id(core, "0000.0000") is None

    clock.now += timedelta(seconds=1)
    third = paper(core, clock, "0000.0000")
    assert not third.ok and third.text == answer
    assert len(arxiv.requests) == 2  # an hour later arXiv is asked again


def test_a_missing_id_does_not_hide_another_id(core, arxiv, clock):
    arxiv.replies.extend([ok(real(MISSING)), ok(real(FOUND))])
    assert not paper(core, clock, "0000.0000").ok
    assert paper(core, clock, "1706.03762").ok
    assert len(arxiv.requests) == 2


@pytest.mark.parametrize("status", [429, 503])
def test_arxiv_errors_are_not_remembered(core, arxiv, clock, status):
    arxiv.replies.extend([(status, b"busy", {}), ok(real(FOUND))])
    failed = paper(core, clock, "1706.03762")
    assert not failed.ok and "arXiv could not be reached" in failed.text
    assert catalog.get_by_arxiv_id(core, "1706.03762") is None
    retried = paper(core, clock, "1706.03762")  # same instant: the failure was not cached
    assert retried.ok and retried.text == "arXiv 1706.03762 (found on arXiv and added to the catalog):"
    assert len(arxiv.requests) == 2


def test_arxiv_unreachable_is_not_remembered(core, arxiv, clock):
    arxiv.replies.append(ok(real(MISSING)))
    url = arxiv.url
    arxiv.close()  # nothing listens on the port any more
    failed = paper(core, clock, "0000.0000")
    assert not failed.ok and "arXiv could not be reached" in failed.text

    back = FakeArxiv()
    try:
        back.replies.append(ok(real(MISSING)))
        core.settings = replace(core.settings, arxiv_api_url=back.url)
        assert url != back.url
        again = paper(core, clock, "0000.0000")
        assert again.text == "arXiv has no paper 0000.0000; check the id."
        assert len(back.requests) == 1  # asked again: the unreachable attempt was not taken for "no such paper"
    finally:
        back.close()


def _reward_hacking_entry() -> bytes:
    """A real recorded entry that matches the RLHF theme: 2607.09492, first version 2026-07-10."""
    entry = next(e for e in real_entries() if b"2607.09492" in e)
    assert b"<published>2026-07-10" in entry
    return entry


def test_an_old_paper_looked_up_today_is_not_sent_as_new(core, arxiv, clock):
    channels.subscribe(core, KEY, "rlhf")
    arxiv.replies.append(ok(build_feed([_reward_hacking_entry()], 1)))
    reply = paper(core, clock, "2607.09492")
    assert reply.ok and "rlhf" in reply.cards[0].themes

    stored = catalog.get_by_arxiv_id(core, "2607.09492")
    assert stored.announced == "2026-07-10"  # its first version's day, not the day it was looked up
    assert any(s.matched and s.theme == "rlhf" for s in catalog.scores_for(core, stored.id))
    assert "2607.09492" not in [i.paper.arxiv_id for i in build_digest(core, KEY, clock()).items]

    # Control: the same paper stored the way a window fetch stores it (stamped with today) is picked as new.
    entry = re.sub(rb"2607\.09492", b"2611.09492", _reward_hacking_entry())
    record = parse_atom(build_feed([entry], 1)).papers[0]
    assert record.announced is None
    score_and_store(core, catalog.upsert_arxiv_papers(core, [record], clock()).new)
    assert [i.paper.arxiv_id for i in build_digest(core, KEY, clock()).items] == ["2611.09492"]
