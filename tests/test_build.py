"""build_digest on a real SQLite catalog: window, exclusions, updates, classic, coverage, nothing recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from digests import catalog, channels
from digests.build import BULK_FROM, build_digest, build_digests, digest_to_dict
from digests.errors import ChannelError
from digests.fetch import record_run
from digests.models import FetchRun, Paper, Theme, ThemeScore
from digests.service import open_core
from digests.settings import load_settings

THEMES = (
    Theme(name="rlhf", label="RLHF", description="", exemplars=("Deep reinforcement learning",)),
    Theme(name="oversight", label="Oversight", description=""),
    Theme(name="interpretability", label="Interpretability", description=""),
)
KEY = "slack:T1:C1"


@pytest.fixture
def core(fixed_now):
    core = open_core(load_settings(), clock=lambda: fixed_now - timedelta(days=1), sync=False)
    core.themes = THEMES
    return core


def add_arxiv(core, arxiv_id: str, announced: str, scores: dict[str, float], version: int = 1, **kw) -> Paper:
    paper = Paper(title=kw.pop("title", f"Paper {arxiv_id}"), abstract=kw.pop("abstract", ""), arxiv_id=arxiv_id,
                  version=version, origin="arxiv", announced=announced, **kw)
    seen = datetime.fromisoformat(announced + "T01:00:00+00:00")
    result = catalog.upsert_arxiv_papers(core, [paper], seen)
    stored = (result.new or result.revised or result.unchanged)[0]
    catalog.store_scores(core, stored.id, [ThemeScore(t, s, True, why=(f"{t} seed",)) for t, s in scores.items()])
    return stored


def add_seed(core, title: str, themes: tuple[str, ...], abstract: str = "") -> int:
    paper_id = core.db["papers"].insert({"title": title, "abstract": abstract, "origin": "seed",
                                         "created_at": "2026-01-01", "modified_at": "2026-01-01"}).last_pk
    catalog.store_scores(core, paper_id, [ThemeScore(t, 1.0, True) for t in themes])
    return paper_id


def add_run(core, started: str, outcome: str = "ok", window_start: str = "2026-11-18T00:00:00+00:00") -> None:
    record_run(core, FetchRun(id=None, started=started, finished=started, window_start=window_start,
                              window_end=started, outcome=outcome, scanned={"cs.CL": 700, "cs.LG": 504}))


def mark_sent(core, arxiv_id: str, version: int = 1) -> None:
    """What the ledger records after a successful post."""
    core.db["sent_papers"].insert({"channel": KEY, "arxiv_id": arxiv_id, "version": version,
                                   "digest_id": f"{KEY}|2026-W47", "sent_at": "2026-11-16T09:00:00+00:00"})


def add_delivery(core, week: str, posted_at: str) -> None:
    core.db["deliveries"].insert({"digest_id": f"{KEY}|{week}", "channel": KEY, "week": week, "status": "posted",
                                  "message_ref": "ts1", "created_at": posted_at, "posted_at": posted_at})


def test_digest_items_ranked_multi_theme_once_and_capped(core, fixed_now):
    channels.subscribe(core, KEY, ["rlhf", "oversight"])
    channels.set_size(core, KEY, new=2)
    add_arxiv(core, "2611.00001", "2026-11-23", {"rlhf": 0.5})
    add_arxiv(core, "2611.00002", "2026-11-24", {"rlhf": 0.8, "oversight": 0.6})
    add_arxiv(core, "2611.00003", "2026-11-24", {"oversight": 0.7})
    add_arxiv(core, "2611.00004", "2026-11-24", {"interpretability": 0.99})
    add_run(core, "2026-11-25T01:00:00+00:00")
    digest = build_digest(core, KEY, fixed_now)
    assert (digest.id, digest.week, digest.status) == (f"{KEY}|2026-W48", "2026-W48", "ok")
    assert [(i.paper.arxiv_id, i.themes) for i in digest.items] == [
        ("2611.00002", ("rlhf", "oversight")), ("2611.00003", ("oversight",))]
    assert digest.title == "Week of Nov 23: RLHF, Oversight"
    assert digest.coverage.text == (
        "The best 2 of 3 new papers in RLHF, Oversight; scanned 1,204 cs.CL/cs.LG papers from arXiv, Nov 23-25.")


def test_new_subscription_starts_from_current_week(core, fixed_now):
    channels.subscribe(core, KEY, "rlhf")
    add_arxiv(core, "2611.00010", "2026-11-10", {"rlhf": 0.99})
    add_arxiv(core, "2611.00011", "2026-11-23", {"rlhf": 0.2})
    add_run(core, "2026-11-25T01:00:00+00:00")
    assert [i.paper.arxiv_id for i in build_digest(core, KEY, fixed_now).items] == ["2611.00011"]


def test_window_since_previous_digest(core, fixed_now):
    core.clock = lambda: datetime(2026, 10, 1, tzinfo=UTC)
    channels.subscribe(core, KEY, "rlhf")
    add_delivery(core, "2026-W46", "2026-11-09T09:00:00+00:00")
    add_arxiv(core, "2611.00012", "2026-11-08", {"rlhf": 0.9})
    add_arxiv(core, "2611.00013", "2026-11-12", {"rlhf": 0.9})
    add_run(core, "2026-11-25T01:00:00+00:00")
    assert [i.paper.arxiv_id for i in build_digest(core, KEY, fixed_now).items] == ["2611.00013"]


def test_already_sent_excluded_and_new_version_is_an_updated_line(core, fixed_now):
    channels.subscribe(core, KEY, "rlhf")
    add_arxiv(core, "2611.00020", "2026-11-23", {"rlhf": 0.9})
    mark_sent(core, "2611.00020", version=1)
    add_arxiv(core, "2611.00020", "2026-11-24", {"rlhf": 0.9}, version=2)
    add_run(core, "2026-11-25T01:00:00+00:00")
    digest = build_digest(core, KEY, fixed_now)
    assert digest.items == ()
    assert [(u.paper.arxiv_id, u.version) for u in digest.updated] == [("2611.00020", 2)]
    assert digest.status == "quiet"
    assert digest.empty_note is None  # the coverage line says it; renderers print both
    assert digest.coverage.text.startswith("No new papers in RLHF this week; scanned 1,204 cs.CL/cs.LG papers")


def test_classic_rotation_with_since_then_pointers(core, fixed_now):
    channels.subscribe(core, KEY, ["rlhf", "oversight"])
    first = add_seed(core, "Deep reinforcement learning from human preferences", ("rlhf",),
                     "learning reward models from human preference comparisons")
    second = add_seed(core, "AI safety via debate", ("oversight",))
    add_seed(core, "Toy models of superposition", ("interpretability",))
    near = add_arxiv(core, "2611.00030", "2026-11-24", {"rlhf": 0.6}, title="Reward models from human preferences",
                     abstract="preference comparisons for reward models")
    add_arxiv(core, "2611.00031", "2026-11-24", {"rlhf": 0.7}, title="Protein structure", abstract="folding")
    add_run(core, "2026-11-25T01:00:00+00:00")
    digest = build_digest(core, KEY, fixed_now)
    assert digest.classic.paper.id == first
    assert [p.arxiv_id for p in digest.classic.since_then] == [near.arxiv_id]
    core.db["classics_shown"].insert({"channel": KEY, "paper_id": first, "digest_id": digest.id,
                                      "shown_at": "2026-11-25T12:00:00+00:00"})
    assert build_digest(core, KEY, fixed_now).classic.paper.id == second


def test_no_classic_when_size_zero(core, fixed_now):
    channels.subscribe(core, KEY, "rlhf")
    channels.set_size(core, KEY, classic=0)
    add_seed(core, "Deep reinforcement learning from human preferences", ("rlhf",))
    assert build_digest(core, KEY, fixed_now).classic is None


def test_no_fetch_and_failed_fetch_are_source_errors(core, fixed_now):
    channels.subscribe(core, KEY, "rlhf")
    digest = build_digest(core, KEY, fixed_now)
    assert (digest.status, digest.coverage.status) == ("source_error", "none")
    add_run(core, "2026-11-24T01:00:00+00:00", "failed")
    digest = build_digest(core, KEY, fixed_now)
    assert digest.coverage.text == "arXiv could not be reached since Tuesday, so this digest has no new papers from arXiv."


def test_build_records_nothing(core, fixed_now):
    channels.subscribe(core, KEY, "rlhf")
    add_arxiv(core, "2611.00040", "2026-11-24", {"rlhf": 0.9})
    add_seed(core, "Deep reinforcement learning from human preferences", ("rlhf",))
    before = {t: core.db[t].count for t in ("sent_papers", "classics_shown", "deliveries")}
    first = build_digest(core, KEY, fixed_now)
    assert build_digest(core, KEY, fixed_now) == first
    assert {t: core.db[t].count for t in before} == before


def test_paused_and_unknown_channels_raise(core, fixed_now):
    channels.subscribe(core, KEY, "rlhf")
    channels.unsubscribe(core, KEY)
    with pytest.raises(ChannelError, match="paused"):
        build_digest(core, KEY, fixed_now)
    with pytest.raises(ChannelError, match="subscribe it first"):
        build_digest(core, "console:nobody", fixed_now)


@pytest.mark.parametrize("count", [3, BULK_FROM])
def test_build_digests_matches_one_by_one(core, fixed_now, count):
    keys = [KEY] + [f"console:c{i}" for i in range(count - 1)]
    for n, key in enumerate(keys):
        channels.subscribe(core, key, ["rlhf", "oversight"] if n % 2 else ["rlhf"])
    add_arxiv(core, "2611.00050", "2026-11-24", {"rlhf": 0.9})
    add_arxiv(core, "2611.00051", "2026-11-24", {"oversight": 0.8})
    add_seed(core, "Deep reinforcement learning from human preferences", ("rlhf",))
    mark_sent(core, "2611.00050")
    add_delivery(core, "2026-W47", "2026-11-23T09:00:00+00:00")
    add_run(core, "2026-11-25T01:00:00+00:00")
    together = build_digests(core, keys, fixed_now)
    assert together == [build_digest(core, k, fixed_now) for k in keys]
    assert together[0].items == () and together[1].items[0].paper.arxiv_id == "2611.00050"


def test_digest_to_dict_is_json(core, fixed_now):
    channels.subscribe(core, KEY, "rlhf")
    add_arxiv(core, "2611.00060", "2026-11-24", {"rlhf": 0.9})
    add_seed(core, "Deep reinforcement learning from human preferences", ("rlhf",))
    data = json.loads(json.dumps(digest_to_dict(build_digest(core, KEY, fixed_now))))
    assert data["items"][0]["paper"]["url"] == "https://arxiv.org/abs/2611.00060"
    assert data["classic"]["paper"]["title"].startswith("Deep reinforcement")
    assert (data["coverage"]["status"], data["status"]) == ("none", "source_error")
