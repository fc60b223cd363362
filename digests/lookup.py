"""The `/paper` lookup over the catalog's FTS5 indexes: ids and URLs, exact and partial titles, free words.

User text never reaches FTS5 as query syntax: it is reduced to quoted words first. Every query is bounded
(newest matches first, capped candidate sets, AND queries of words FTS5 intersects quickly), so a lookup
stays fast on a million papers and gives the same answer every time.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from typing import TYPE_CHECKING

from .catalog import _chunks, catalog_version, get_by_arxiv_id, get_papers, normalize_title, parse_arxiv_ref
from .models import Paper

if TYPE_CHECKING:
    from .service import Core

MAX_QUERY_CHARS = 300
"""Longer lookup text is cut: titles are far shorter, and FTS cost grows with every term."""
MAX_QUERY_TERMS = 12
_WORD = re.compile(r"\w+", re.UNICODE)


# -- lookup ----------------------------------------------------------------------------------


def query_terms(query: str) -> list[str]:
    """Return the lower-case words of `query` that lookup uses (never raw FTS syntax)."""
    text = unicodedata.normalize("NFKC", query[:MAX_QUERY_CHARS]).casefold()
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        if word not in seen and word.strip("_"):
            seen[word] = None
    return list(seen)[:MAX_QUERY_TERMS]


WEAK_MATCH = 15.0
"""A top score below this means no paper holds every query word (only some of them matched)."""
CANDIDATES = 25
"""Most FTS matches taken per tier. FTS5 ranks every match it returns, so a word found in half of a
million-paper catalog would cost hundreds of milliseconds; taking the newest CANDIDATES matches of each
tier (cheap: no ranking) and ranking those in Python bounds a lookup whatever the catalog size."""
RERANK = 15
"""How many of the best candidates are re-ranked by how many query words their abstract and authors hold."""
TIERS = (
    ("papers_title_fts", "title_and", 30.0),
    ("papers_fts", "and", 15.0),
    ("papers_title_fts", "or", 5.0),
    ("papers_fts", "or", 0.0),
)
"""FTS queries tried in order (index, query), with the base score of a paper first found by each. Title
words go to a title-only index: in the full index a word common in abstracts makes a title filter slow."""


def _rowids(core: "Core", table: str, match: str, limit: int = CANDIDATES) -> list[int]:
    rows = core.db.execute(
        f"SELECT rowid FROM {table} WHERE {table} MATCH ? ORDER BY rowid DESC LIMIT ?", [match, limit]
    ).fetchall()
    return [int(r[0]) for r in rows]


def _quoted(terms: list[str]) -> list[str]:
    """Return each word as an FTS5 string (quotes doubled), so user text is never parsed as query syntax."""
    return ['"' + t.replace('"', '""') + '"' for t in terms]


def _stem(word: str) -> str:
    for suffix in ("ies", "es", "s", "ing", "ed"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _text_bonus(terms: list[str], abstract: str, authors: str) -> float:
    text = f"{abstract} {authors}".casefold()
    return 5.0 * sum(1 for t in terms if _stem(t) in text) / len(terms)


BM25_K1, BM25_B = 1.2, 0.75
"""The usual BM25 constants: term-frequency saturation and title-length normalisation."""


def _title_bonus(idf: dict[str, float], avglen: float, phrase: str, title_norm: str | None) -> float:
    """Return up to 10 points of BM25 over the title (normalised by an ideal title holding each word
    once) plus the phrase boosts: 20 when the title starts with the query words, 10 when it holds them."""
    if not title_norm:
        return 0.0
    words = title_norm.split()
    tf: dict[str, int] = {}
    for word in words:
        stem = _stem(word)
        if stem in idf:
            tf[stem] = tf.get(stem, 0) + 1
    norm = BM25_K1 * (1 - BM25_B + BM25_B * len(words) / avglen)
    bm25 = sum(idf[stem] * n * (BM25_K1 + 1) / (n + norm) for stem, n in tf.items())
    bonus = 10.0 * min(1.0, bm25 / (sum(idf.values()) * (BM25_K1 + 1) / (1 + BM25_K1)))
    if len(idf) > 1 and phrase in title_norm:
        bonus += 20.0 if title_norm.startswith(phrase) else 10.0
    return bonus


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode one SQLite/FTS5 varint at `pos`; return (value, next position)."""
    value = 0
    for i in range(9):
        byte = buf[pos + i]
        if i == 8:
            return (value << 8) | byte, pos + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    raise ValueError("bad varint")  # pragma: no cover - the loop always returns


def _title_stats(core: "Core") -> tuple[int, float]:
    """Return (papers, mean title length in tokens) for BM25, from the title index's averages record
    (FTS5 keeps the row count and token total there: no scan), memoised per catalog version."""
    version = catalog_version(core)
    cached = core.cache.get("title_stats")
    if isinstance(cached, tuple) and cached[0] == version:
        return cached[1]
    stats = (1, 10.0)
    row = core.db.execute("SELECT block FROM papers_title_fts_data WHERE id = 1").fetchone()
    try:
        rows, pos = _varint(row[0], 0)
        tokens, _ = _varint(row[0], pos)
        if rows > 0 and tokens > 0:
            stats = (rows, tokens / rows)
    except (TypeError, IndexError, ValueError):
        pass  # an empty index has no averages record yet
    core.cache["title_stats"] = (version, stats)
    return stats


COMMON_WORDS = {"papers_title_fts": 2000, "papers_fts": 5000}
"""A word in more papers than this (per index) is left out of that index's AND query; it still counts in the
re-ranking. Intersecting such words walks long doclists for few matches (the slow case on a large catalog),
and a word that common says little about which paper is meant: the rarer words carry the query."""
DF_CAP = 20_000
"""How far a common word is counted: to pick the two rarest of a query's common words, and for BM25."""
DF_DRIFT = 20
"""Word counts are counted again once the catalog has grown or shrunk by more than 1/DF_DRIFT (5%)."""


class _WordCounts:
    """How common each query word is, for one lookup: capped document counts per index, memoised in
    `core.cache` until the catalog's size drifts by 5%, and the title count and mean length for BM25.

    Counts are kept across catalog versions on purpose: a daily fetch into a large catalog changes no
    count that matters (they only pick the AND words and weigh the ranking), and counting common words
    again after every fetch would put cold index pages on the next lookups' path. A bulk import, or a
    small catalog's growth, counts again.
    """

    def __init__(self, core: "Core") -> None:
        self.db = core.db
        self.papers, self.avglen = _title_stats(core)
        cached = core.cache.get("word_df")
        if not isinstance(cached, tuple) or abs(self.papers - cached[0]) * DF_DRIFT > cached[0]:
            cached = core.cache["word_df"] = (self.papers, {})
        self.known: dict[tuple[str, str], tuple[int, int]] = cached[1]

    def df(self, table: str, term: str, cap: int) -> int:
        """Return how many papers hold `term` in `table`, counted up to `cap` (the probe stops there, so a
        very common word costs no more than a moderately common one)."""
        count, probed = self.known.get((table, term), (0, 0))
        if count >= probed and cap > probed:  # never probed, or only up to a lower cap that it reached
            if len(self.known) > 100_000:
                self.known.clear()
            count = int(
                self.db.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {table} MATCH ? LIMIT ?)", [term, cap]
                ).fetchone()[0]
            )
            self.known[(table, term)] = (count, cap)
        return min(count, cap)

    def title_df(self, term: str) -> int:
        """Return how many titles hold `term`: probed to the common-word threshold, on to DF_CAP past it."""
        cap = COMMON_WORDS["papers_title_fts"] + 1
        df = self.df("papers_title_fts", term, cap)
        return self.df("papers_title_fts", term, DF_CAP) if df >= cap else df

    def and_query(self, table: str, quoted: list[str]) -> str:
        """Return `table`'s AND query: its rare words, or the two rarest when every word is common.

        FTS5 intersects two long doclists quickly, but three or more common words with a sparse
        intersection make it walk a whole doclist (milliseconds on a million papers); the dropped words
        still count in the re-ranking. Common words are ordered by how many titles hold them, for both
        indexes: titles are far cheaper to count than abstracts, and a word common in titles is common in
        abstracts too.
        """
        common = COMMON_WORDS[table]
        rare = [term for term in quoted if self.df(table, term, common + 1) <= common]
        if rare or len(quoted) <= 2:
            return " ".join(rare or quoted)
        return " ".join(sorted(quoted, key=self.title_df)[:2])

    def idf(self, terms: list[str], quoted: list[str]) -> dict[str, float]:
        """Return the BM25 inverse document frequency of each query word's stem in titles (a word in more
        than DF_CAP titles weighs as if in exactly DF_CAP: still far below any rarer word)."""
        idf: dict[str, float] = {}
        for term, q in zip(terms, quoted):
            df = self.title_df(q)
            weight = math.log(1 + (max(self.papers, df) - df + 0.5) / (df + 0.5))
            stem = _stem(term)
            idf[stem] = max(idf.get(stem, 0.0), weight)
        return idf


def _candidates(core: "Core", terms: list[str], query: str, limit: int) -> dict[int, float]:
    quoted = _quoted(terms)
    words = _WordCounts(core)
    scores: dict[int, float] = {}
    for row in core.db.execute("SELECT id FROM papers WHERE title_norm = ?", [normalize_title(query)]):
        scores[row[0]] = 50.0
    exact = bool(scores)
    for table, kind, base in TIERS:
        if exact and kind != "title_and":
            continue
        if base < 15.0 and (len(scores) >= limit or any(v >= 30.0 for v in scores.values())):
            break
        if len(terms) == 1 and kind == "or":
            continue
        if kind == "and" and len(scores) >= limit:
            continue  # enough papers have every word in their title
        match = " OR ".join(quoted) if kind == "or" else words.and_query(table, quoted)
        for rowid in _rowids(core, table, match, max(CANDIDATES, limit)):
            scores.setdefault(rowid, base)
    if not scores:
        return scores
    ids = list(scores)
    idf, phrase = words.idf(terms, quoted), " ".join(terms)
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for pid, title_norm in core.db.execute(f"SELECT id, title_norm FROM papers WHERE id IN ({marks})", chunk):
            scores[pid] += _title_bonus(idf, words.avglen, phrase, title_norm)
    best = sorted(scores, key=lambda pid: (-scores[pid], -pid))[: max(RERANK, limit)]
    marks = ",".join("?" * len(best))
    for pid, abstract, authors in core.db.execute(
        f"SELECT id, abstract, authors FROM papers WHERE id IN ({marks})", best
    ):
        scores[pid] += _text_bonus(terms, abstract, authors)
    return {pid: scores[pid] for pid in best}


def search(core: "Core", query: str, limit: int = 10) -> list[tuple[Paper, float]]:
    """Return up to `limit` papers for a `/paper` query, best first, with a relevance score.

    Accepts an arXiv id (with or without version), an abs/pdf URL, an exact or partial title or free
    words. User text is reduced to quoted words before it reaches FTS5, so operators, quotes, `*`, `-`
    or `NEAR(` are searched as plain words and never parsed as query syntax. Ranking: exact title, then
    papers with every (rare) word in the title, then in title, abstract or authors, then any word; within
    that, BM25 over the title (document frequencies from FTS5) plus boosts for the words as a phrase at the
    start of or inside the title, then how many words the abstract and authors hold.
    """
    if limit <= 0:
        return []
    ref = parse_arxiv_ref(query)
    if ref is not None:
        paper = get_by_arxiv_id(core, ref[0])
        return [(paper, 100.0)] if paper else []
    terms = query_terms(query)
    if not terms:
        return []
    scores = _candidates(core, terms, query[:MAX_QUERY_CHARS], limit)
    best = sorted(scores, key=lambda pid: (-scores[pid], -pid))[:limit]
    return [(p, round(scores[p.id], 4)) for p in get_papers(core, best)]  # type: ignore[index]


PREFIX_MIN_CHARS = 2
"""A lone one-letter prefix matches too much of a large catalog to be worth an index scan."""


def title_prefix_ids(core: "Core", partial: str, limit: int = 25) -> list[int]:
    """Return ids of papers whose title has the finished words of `partial` and a word starting with its last.

    For as-you-type completion: the unstemmed title index, every word quoted (never raw user syntax), the
    newest matches first without ranking, so a common prefix stays cheap on a million papers.
    """
    terms = query_terms(partial)
    if not terms or (len(terms) == 1 and len(terms[0]) < PREFIX_MIN_CHARS):
        return []
    quoted = _quoted(terms)
    return _rowids(core, "papers_title_prefix", " ".join(quoted[:-1] + [quoted[-1] + "*"]), limit)


def suggest_titles(core: "Core", query: str, limit: int = 3) -> list[str]:
    """Return display titles of the papers whose titles are closest to `query` (for "nothing found")."""
    titles = [r[0] for r in core.db.execute("SELECT title FROM papers WHERE title IS NOT NULL LIMIT 5000")]
    return difflib.get_close_matches(query[:MAX_QUERY_CHARS], titles, n=limit, cutoff=0.3)
