"""Lookup behaviour that matters on a large catalog, shown on a small one with the thresholds lowered:
common words leave the AND queries, the answer is the same every time, and bulk imports optimize the indexes."""

from __future__ import annotations

import pytest

from digests import catalog, importer, lookup
from digests.models import Paper, SourceRef


def _paper(i: int, title: str, abstract: str = "") -> Paper:
    return Paper(
        title=title,
        abstract=abstract or f"Filler abstract number {i}.",
        authors=(f"Author {i}",),
        origin="seed",
        sources=(SourceRef(file="list.jsonl", line=i + 1, kind="import"),),
    )


@pytest.fixture
def crowded(fresh_core, monkeypatch):
    """A catalog where 'language', 'model' and 'reward' are common words (thresholds lowered to 5)."""
    monkeypatch.setattr(lookup, "COMMON_WORDS", {"papers_title_fts": 5, "papers_fts": 5})
    papers = [_paper(i, f"Language model study {i}") for i in range(8)]
    papers += [_paper(100 + i, f"Reward shaping note {i}") for i in range(8)]
    papers += [_paper(200 + i, f"Language reward sketch {i}") for i in range(3)]
    papers.append(_paper(300, "Language model reward hacking in the wild"))
    papers.append(_paper(301, "Quokka behaviour", abstract="A language model reward study of quokkas."))
    importer.import_papers(fresh_core, papers, tag=False)
    return fresh_core


def test_rare_words_carry_the_and_query(crowded):
    quoted = ['"language"', '"model"', '"hacking"']
    assert lookup._WordCounts(crowded).and_query("papers_title_fts", quoted) == '"hacking"'


def test_only_common_words_use_the_two_rarest(crowded):
    quoted = ['"language"', '"model"', '"reward"']
    counts = {
        q: crowded.db.execute("SELECT count(*) FROM papers_title_fts WHERE papers_title_fts MATCH ?", [q]).fetchone()[0]
        for q in quoted
    }
    assert min(counts.values()) > 5 and len(set(counts.values())) == 3  # all common, no ties
    rarest = sorted(quoted, key=counts.__getitem__)[:2]
    assert lookup._WordCounts(crowded).and_query("papers_title_fts", quoted) == " ".join(rarest)
    assert lookup._WordCounts(crowded).and_query("papers_title_fts", quoted[:2]) == '"language" "model"'


def test_common_words_still_find_the_paper_holding_all_of_them(crowded):
    results = lookup.search(crowded, "language model reward", limit=3)
    assert results[0][0].title == "Language model reward hacking in the wild"
    words = lookup.search(crowded, "model reward quokkas", limit=3)
    assert words[0][0].title == "Quokka behaviour"


def test_the_same_query_gives_the_same_answer(crowded):
    first = [(p.id, s) for p, s in lookup.search(crowded, "language reward", limit=10)]
    for _ in range(3):
        assert [(p.id, s) for p, s in lookup.search(crowded, "language reward", limit=10)] == first


def test_word_counts_are_counted_again_once_the_catalog_size_drifts(crowded):
    assert lookup._WordCounts(crowded).and_query("papers_title_fts", ['"hacking"', '"wild"']) == '"hacking" "wild"'
    assert lookup._WordCounts(crowded).df("papers_title_fts", '"hacking"', 100) == 1
    size = catalog.count_papers(crowded)
    importer.import_papers(crowded, [_paper(400, "Hacking wild thing 0")], tag=False)  # under 5% more
    assert lookup._WordCounts(crowded).df("papers_title_fts", '"hacking"', 100) == 1  # kept: a heuristic, not a count
    more = [_paper(401 + i, f"Hacking wild thing {i + 1}") for i in range(size // 20 + 1)]
    importer.import_papers(crowded, more, tag=False)
    assert lookup._WordCounts(crowded).df("papers_title_fts", '"hacking"', 100) == 2 + len(more)
    # both words are now common: the AND keeps them (two words), and the old paper still comes first
    assert lookup.search(crowded, "hacking in the wild", limit=1)[0][0].title.startswith("Language model reward")


def _segments(core, table: str) -> int:
    return int(core.db.execute(f"SELECT count(DISTINCT segid) FROM {table}_idx").fetchone()[0])


def test_a_large_import_leaves_each_search_index_in_one_segment(fresh_core, monkeypatch):
    monkeypatch.setattr(importer, "OPTIMIZE_MIN_PAPERS", 10**9)
    seen: list[int] = []
    for start in range(0, 600, 100):  # several transactions: several FTS5 segments
        importer.import_papers(
            fresh_core, [_paper(i, f"Paper about topic {i}") for i in range(start, start + 100)], tag=False
        )
    assert _segments(fresh_core, "papers_fts") > 1
    monkeypatch.setattr(importer, "OPTIMIZE_MIN_PAPERS", 500)
    importer.import_papers(
        fresh_core, [_paper(i, f"Paper about topic {i}") for i in range(600, 1300)], tag=False,
        batch=300, progress=seen.append,
    )
    assert seen == [300, 300, 100]
    for table in catalog.SEARCH_INDEXES:
        assert _segments(fresh_core, table) == 1, table
    assert lookup.search(fresh_core, "topic 1299", limit=1)[0][0].title == "Paper about topic 1299"


def test_a_small_import_into_a_large_catalog_skips_the_optimize(fresh_core, monkeypatch):
    monkeypatch.setattr(importer, "OPTIMIZE_MIN_PAPERS", 10**9)
    for start in range(0, 300, 100):
        importer.import_papers(
            fresh_core, [_paper(i, f"Paper about topic {i}") for i in range(start, start + 100)], tag=False
        )
    before = _segments(fresh_core, "papers_fts")
    monkeypatch.setattr(importer, "OPTIMIZE_MIN_PAPERS", 5)
    importer.import_papers(fresh_core, [_paper(i, f"Paper about topic {i}") for i in range(300, 310)], tag=False)
    assert _segments(fresh_core, "papers_fts") >= before > 1



def test_title_stats_come_from_the_index_averages_record(crowded):
    papers, avglen = lookup._title_stats(crowded)
    assert papers == catalog.count_papers(crowded)
    titles = [r[0] for r in crowded.db.execute("SELECT title_norm FROM papers WHERE title_norm IS NOT NULL")]
    assert avglen == pytest.approx(sum(len(t.split()) for t in titles) / papers, rel=0.05)


def test_title_bm25_weighs_rare_words_and_saturates_repeats():
    idf = {"quokka": 6.0, "model": 1.0}
    rare = lookup._title_bonus(idf, 4.0, "quokka model", "a quokka study here")
    common = lookup._title_bonus(idf, 4.0, "quokka model", "a model study here")
    both = lookup._title_bonus(idf, 4.0, "quokka model", "quokka and model notes")
    assert common < rare < both <= 10.0
    phrase = lookup._title_bonus(idf, 4.0, "quokka model", "quokka model notes here")
    assert phrase == pytest.approx(both + 20.0, abs=0.5)  # the title starts with the query words
    once = lookup._title_bonus({"quokka": 6.0}, 4.0, "quokka", "quokka notes on things")
    twice = lookup._title_bonus({"quokka": 6.0}, 4.0, "quokka", "quokka quokka on things")
    assert once <= twice <= 10.0


def test_among_title_matches_the_rarer_common_word_ranks_higher(crowded):
    importer.import_papers(
        crowded, [_paper(500, "Census language notes"), _paper(501, "Census reward notes")], tag=False
    )
    # 'census' is rare, so it alone is the title AND; 'reward' (13 titles) is rarer than 'language' (20).
    results = lookup.search(crowded, "census language reward", limit=5)
    assert [p.title for p, _ in results] == ["Census reward notes", "Census language notes"]
    assert results[0][1] > results[1][1]


def test_a_larger_limit_gets_more_than_the_default_candidate_count(crowded, monkeypatch):
    monkeypatch.setattr(lookup, "CANDIDATES", 4)
    monkeypatch.setattr(lookup, "RERANK", 3)
    expected = crowded.db.execute(
        "SELECT count(*) FROM papers_fts WHERE papers_fts MATCH 'language'"
    ).fetchone()[0]
    assert expected > 10
    assert len(lookup.search(crowded, "language", limit=3)) == 3
    assert len(lookup.search(crowded, "language", limit=100)) == expected
