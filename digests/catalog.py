"""The paper catalog in SQLite: seed sync, arXiv upserts, bulk import, scores and `/paper` lookup.

Papers are keyed by an internal id; `arxiv_id` is versionless and unique, with `version` beside it.
The FTS5 index over title, abstract and authors is kept in sync by triggers on every write.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from .errors import CatalogError
from .models import Paper, SourceRef, ThemeScore
from .store import utcnow_iso

if TYPE_CHECKING:
    from .service import Core


_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z][a-z\-]+(?:\.[A-Z]{2})?/\d{7}"
ARXIV_REF = re.compile(
    rf"^(?:(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/|arxiv:\s*)?"
    rf"(?P<id>{_NEW_ID}|{_OLD_ID})(?:v(?P<version>\d+))?(?:\.pdf)?/?$",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class UpsertResult:
    """What an arXiv upsert did: papers first seen, papers with a newer version, and the rest."""

    new: list[Paper] = field(default_factory=list)
    revised: list[Paper] = field(default_factory=list)
    unchanged: list[Paper] = field(default_factory=list)


def normalize_title(text: str | None) -> str | None:
    """Return a title folded for equality: NFKC, lower case, words only, single spaces."""
    if not text:
        return None
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    return " ".join(words) or None


def parse_arxiv_ref(text: str) -> tuple[str, int | None] | None:
    """Return (versionless id, version) when `text` is an arXiv id or abs/pdf URL, else None."""
    match = ARXIV_REF.match(text.strip())
    if not match:
        return None
    version = match.group("version")
    return match.group("id"), int(version) if version else None


def catalog_version(core: "Core") -> int:
    """Return a number that changes whenever papers or their scores change."""
    row = core.db.execute("SELECT value FROM meta WHERE key = 'catalog_version'").fetchone()
    return int(row[0])


def _bump_version(core: "Core") -> None:
    core.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'catalog_version'")


SEARCH_INDEXES = ("papers_fts", "papers_title_fts", "papers_title_prefix")
"""The FTS5 indexes kept in sync with `papers` by triggers."""


def optimize_search_indexes(core: "Core") -> None:
    """Merge each FTS5 index into one segment (after a bulk import: fewer pages read per lookup)."""
    with core.db.atomic():
        for table in SEARCH_INDEXES:
            core.db.execute(f"INSERT INTO {table}({table}) VALUES ('optimize')")


# -- reading ---------------------------------------------------------------------------------


def _rows_to_papers(core: "Core", rows: Sequence[dict[str, Any]]) -> list[Paper]:
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    sources: dict[int, list[SourceRef]] = {i: [] for i in ids}
    themes: dict[int, list[str]] = {i: [] for i in ids}
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for s in core.db.execute(
            f"SELECT paper_id, file, line, kind, title, text FROM paper_sources WHERE paper_id IN ({marks})"
            " ORDER BY paper_id, file, line",
            chunk,
        ):
            sources[s[0]].append(SourceRef(file=s[1], line=s[2], kind=s[3], title=s[4], text=s[5]))
        for t in core.db.execute(
            f"SELECT paper_id, theme FROM paper_themes WHERE matched = 1 AND paper_id IN ({marks})"
            " ORDER BY paper_id, score DESC",
            chunk,
        ):
            themes[t[0]].append(t[1])
    return [_row_to_paper(r, tuple(sources[r["id"]]), tuple(themes[r["id"]])) for r in rows]


def _row_to_paper(row: dict[str, Any], sources: tuple[SourceRef, ...], themes: tuple[str, ...]) -> Paper:
    return Paper(
        id=row["id"],
        title=row["title"],
        abstract=row["abstract"],
        authors=tuple(json.loads(row["authors_json"])),
        affiliations=tuple(json.loads(row["affiliations_json"])),
        arxiv_id=row["arxiv_id"],
        version=row["version"],
        categories=tuple(json.loads(row["categories_json"])),
        primary_category=row["primary_category"],
        published=row["published"],
        updated=row["updated"],
        doi=row["doi"],
        journal_ref=row["journal_ref"],
        comment=row["comment"],
        origin=row["origin"],
        announced=row["announced"],
        sources=sources,
        themes=themes,
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _select(core: "Core", where: str = "1", params: Sequence[Any] = (), order: str = "id") -> list[Paper]:
    rows = list(core.db.query(f"SELECT * FROM papers WHERE {where} ORDER BY {order}", params))
    return _rows_to_papers(core, rows)


def get_papers(core: "Core", ids: Sequence[int]) -> list[Paper]:
    """Return the papers with these ids, in the order given (unknown ids are skipped)."""
    found: dict[int, Paper] = {}
    for chunk in _chunks(list(ids), 500):
        for paper in _select(core, f"id IN ({','.join('?' * len(chunk))})", chunk):
            found[paper.id] = paper  # type: ignore[index]
    return [found[i] for i in ids if i in found]


def get_paper(core: "Core", paper_id: int) -> Paper | None:
    """Return the paper with this internal id, or None."""
    papers = _select(core, "id = ?", [paper_id])
    return papers[0] if papers else None


def get_by_arxiv_id(core: "Core", arxiv_id: str) -> Paper | None:
    """Return the paper with this versionless arXiv id (a version suffix is ignored), or None."""
    ref = parse_arxiv_ref(arxiv_id)
    papers = _select(core, "arxiv_id = ?", [ref[0] if ref else arxiv_id])
    return papers[0] if papers else None


def list_papers(core: "Core", theme: str | None = None, origin: str | None = None) -> list[Paper]:
    """Return catalog papers, optionally only those tagged with `theme` and/or of one origin."""
    clauses, params = [], []
    if theme is not None:
        clauses.append("id IN (SELECT paper_id FROM paper_themes WHERE theme = ? AND matched = 1)")
        params.append(core.theme(theme).name)
    if origin is not None:
        clauses.append("origin = ?")
        params.append(origin)
    return _select(core, " AND ".join(clauses) or "1", params)


def seed_papers(core: "Core") -> list[Paper]:
    """Return the papers of the seed catalog (seed files and imported reading lists)."""
    return _select(core, "origin = 'seed'")


def count_papers(core: "Core") -> int:
    """Return how many papers the catalog holds."""
    return int(core.db.execute("SELECT count(*) FROM papers").fetchone()[0])


# -- writing ---------------------------------------------------------------------------------


def _paper_row(paper: Paper, now: str) -> dict[str, Any]:
    return {
        "arxiv_id": paper.arxiv_id,
        "version": paper.version,
        "title": paper.title,
        "title_norm": normalize_title(paper.title),
        "abstract": paper.abstract or "",
        "authors": ", ".join(paper.authors),
        "authors_json": json.dumps(list(paper.authors), ensure_ascii=False),
        "affiliations_json": json.dumps(list(paper.affiliations), ensure_ascii=False),
        "categories_json": json.dumps(list(paper.categories)),
        "primary_category": paper.primary_category,
        "published": paper.published,
        "updated": paper.updated,
        "doi": paper.doi,
        "journal_ref": paper.journal_ref,
        "comment": paper.comment,
        "origin": paper.origin,
        "announced": paper.announced,
        "modified_at": now,
    }


def _insert_paper(core: "Core", paper: Paper, now: str, seed_key: str | None = None) -> int:
    row = _paper_row(paper, now) | {"created_at": now, "seed_key": seed_key}
    cursor = core.db.execute(
        f"INSERT INTO papers ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
    )
    paper_id = int(cursor.lastrowid)  # type: ignore[arg-type]
    _add_sources(core, paper_id, paper.sources)
    return paper_id


def _update_paper(core: "Core", paper_id: int, values: dict[str, Any]) -> None:
    sets = ", ".join(f"{k} = ?" for k in values)
    core.db.execute(f"UPDATE papers SET {sets} WHERE id = ?", [*values.values(), paper_id])


def _add_sources(core: "Core", paper_id: int, sources: Iterable[SourceRef]) -> None:
    core.db.conn.executemany(
        "INSERT OR REPLACE INTO paper_sources (paper_id, file, line, kind, title, text) VALUES (?, ?, ?, ?, ?, ?)",
        [(paper_id, s.file, s.line, s.kind, s.title, s.text) for s in sources],
    )


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _seed_digests(seeds_dir: Path) -> dict[str, str]:
    from .seeds import seed_files

    if not seeds_dir.is_dir():
        raise CatalogError(f"Seed directory {seeds_dir} does not exist; set [paths] seeds in your config")
    return {p.name: _file_digest(p) for p in seed_files(seeds_dir)}


def sync_seeds(core: "Core") -> bool:
    """Load seeds/ into the catalog when a seed file is new, changed or gone; return True if it reloaded.

    Idempotent: with unchanged files this is one small query. Papers are matched across reloads by
    `seeds.seed_key`, so ids, arXiv enrichment and delivery history survive edits to the seed files.
    """
    from . import seeds

    current = _seed_digests(core.settings.seeds_dir)
    stored = {r["file"]: r["sha256"] for r in core.db.query("SELECT file, sha256 FROM seed_files")}
    if current == stored:
        return False
    papers = seeds.parse_seeds(core.settings.seeds_dir)
    now = utcnow_iso(core.clock())
    with core.db.atomic():
        kept = _upsert_seed_papers(core, papers, now)
        core.db.execute(
            f"DELETE FROM papers WHERE origin = 'seed' AND seed_key IS NOT NULL"
            f" AND id NOT IN ({','.join('?' * len(kept)) or 'NULL'})",
            kept,
        )
        core.db.execute("DELETE FROM seed_files")
        core.db.conn.executemany(
            "INSERT INTO seed_files (file, sha256, loaded_at) VALUES (?, ?, ?)",
            [(name, digest, now) for name, digest in current.items()],
        )
        _tag_seed_papers(core, kept)
        _bump_version(core)
    return True


def _upsert_seed_papers(core: "Core", papers: Sequence[Paper], now: str) -> list[int]:
    from .seeds import seed_key

    kept: list[int] = []
    for paper in papers:
        key = seed_key(paper)
        row = core.db.execute("SELECT id, arxiv_id FROM papers WHERE seed_key = ?", [key]).fetchone()
        if row is None:
            kept.append(_insert_paper(core, paper, now, seed_key=key))
            continue
        paper_id, arxiv_id = row
        values = _paper_row(paper, now)
        if arxiv_id:  # enrichment adopted an arXiv record: keep its id, version, title and authors
            for name in ("arxiv_id", "version", "title", "title_norm", "authors", "authors_json", "published"):
                values.pop(name)
        _update_paper(core, paper_id, values)
        core.db.execute("DELETE FROM paper_sources WHERE paper_id = ? AND kind != 'arxiv'", [paper_id])
        _add_sources(core, paper_id, paper.sources)
        kept.append(paper_id)
    return kept


def _tag_seed_papers(core: "Core", paper_ids: Sequence[int]) -> None:
    from .match import tag_seeds

    papers = get_papers(core, paper_ids)
    tags = tag_seeds(core.themes, papers)
    for paper, names in zip(papers, tags):
        store_scores(core, paper.id, [ThemeScore(theme=n, score=1.0, matched=True) for n in names])  # type: ignore[arg-type]


def upsert_arxiv_papers(core: "Core", papers: Sequence[Paper], now: datetime) -> UpsertResult:
    """Store fetched arXiv papers by versionless id; a newer version updates the row and its revision history.

    A fetched paper whose title equals an untitled-by-arXiv seed paper's title is adopted into that seed
    paper instead of creating a second row.
    """
    result = UpsertResult()
    stamp = utcnow_iso(now)
    with core.db.atomic():
        for paper in papers:
            if not paper.arxiv_id:
                raise CatalogError("An arXiv paper without an arXiv id cannot be stored")
            _upsert_one(core, paper, now, stamp, result)
        if result.new or result.revised:
            _bump_version(core)
    return result


def _upsert_one(core: "Core", paper: Paper, now: datetime, stamp: str, result: UpsertResult) -> None:
    row = core.db.execute("SELECT id, version, origin FROM papers WHERE arxiv_id = ?", [paper.arxiv_id]).fetchone()
    version = paper.version or 1
    if row is None:
        seed = core.db.execute(
            "SELECT id FROM papers WHERE arxiv_id IS NULL AND origin = 'seed' AND title_norm = ?",
            [normalize_title(paper.title)],
        ).fetchone()
        if seed is not None and _is_same_work(core, seed[0], paper):
            adopted = adopt_arxiv_record(core, seed[0], paper)
            result.unchanged.append(adopted)
            return
        announced = paper.announced or now.date().isoformat()
        paper_id = _insert_paper(core, replace(paper, origin="arxiv", announced=announced), stamp)
        _record_revision(core, paper.arxiv_id, version, paper.updated, stamp)  # type: ignore[arg-type]
        result.new.append(replace(paper, id=paper_id, origin="arxiv", announced=announced))
        return
    paper_id, old_version, origin = row
    if version > (old_version or 0):
        values = _paper_row(paper, stamp)
        for name in ("origin", "announced"):
            values.pop(name)
        _update_paper(core, paper_id, values)
        _record_revision(core, paper.arxiv_id, version, paper.updated, stamp)  # type: ignore[arg-type]
        result.revised.append(replace(paper, id=paper_id, origin=origin))
    else:
        result.unchanged.append(replace(paper, id=paper_id, origin=origin))


def _is_same_work(core: "Core", seed_id: int, record: Paper) -> bool:
    """Return True when a fetched record with a seed paper's title is that work (a blog headline may not be)."""
    from .fetch import is_confident_match

    seed = get_paper(core, seed_id)
    return seed is not None and is_confident_match(seed, record)


def _record_revision(core: "Core", arxiv_id: str, version: int, updated: str | None, stamp: str) -> None:
    core.db.execute(
        "INSERT OR IGNORE INTO paper_revisions (arxiv_id, version, updated, seen_at) VALUES (?, ?, ?, ?)",
        [arxiv_id, version, updated, stamp],
    )


def adopt_arxiv_record(core: "Core", paper_id: int, record: Paper) -> Paper:
    """Give a seed paper the arXiv id, version, title, authors and metadata of its matched arXiv record."""
    if not record.arxiv_id:
        raise CatalogError("Cannot adopt an arXiv record without an arXiv id")
    other = core.db.execute(
        "SELECT id, origin FROM papers WHERE arxiv_id = ? AND id != ?", [record.arxiv_id, paper_id]
    ).fetchone()
    if other is not None and other[1] != "arxiv":
        raise CatalogError(f"arXiv:{record.arxiv_id} already belongs to another catalog paper")
    stamp = utcnow_iso(core.clock())
    values = {
        "arxiv_id": record.arxiv_id,
        "version": record.version,
        "title": record.title,
        "title_norm": normalize_title(record.title),
        "authors": ", ".join(record.authors),
        "authors_json": json.dumps(list(record.authors), ensure_ascii=False),
        "categories_json": json.dumps(list(record.categories)),
        "primary_category": record.primary_category,
        "published": record.published,
        "updated": record.updated,
        "doi": record.doi,
        "journal_ref": record.journal_ref,
        "comment": record.comment,
        "modified_at": stamp,
    }
    with core.db.atomic():
        if other is not None:  # fetched before enrichment found it: fold that row into the seed paper
            core.db.execute(
                "UPDATE OR IGNORE paper_sources SET paper_id = ? WHERE paper_id = ?", [paper_id, other[0]]
            )
            core.db.execute("DELETE FROM papers WHERE id = ?", [other[0]])
        _update_paper(core, paper_id, values)
        _record_revision(core, record.arxiv_id, record.version or 1, record.updated, stamp)
        _bump_version(core)
    adopted = get_paper(core, paper_id)
    assert adopted is not None
    return adopted


# -- scores ----------------------------------------------------------------------------------


def store_scores(core: "Core", paper_id: int, scores: Sequence[ThemeScore]) -> None:
    """Replace a paper's per-theme scores (score, matched, why, terms)."""
    store_many_scores(core, {paper_id: scores})


def store_many_scores(core: "Core", scores: dict[int, Sequence[ThemeScore]]) -> None:
    """Replace the per-theme scores of many papers in one transaction."""
    with core.db.atomic():
        for chunk in _chunks(list(scores), 500):
            core.db.execute(f"DELETE FROM paper_themes WHERE paper_id IN ({','.join('?' * len(chunk))})", chunk)
        core.db.conn.executemany(
            "INSERT INTO paper_themes (paper_id, theme, score, matched, why_json, terms_json)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (pid, s.theme, float(s.score), int(s.matched), json.dumps(list(s.why)), json.dumps(list(s.terms)))
                for pid, theme_scores in scores.items()
                for s in theme_scores
            ],
        )


def scores_for(core: "Core", paper_id: int) -> list[ThemeScore]:
    """Return a paper's stored per-theme scores, best first."""
    rows = core.db.execute(
        "SELECT theme, score, matched, why_json, terms_json FROM paper_themes WHERE paper_id = ? ORDER BY score DESC",
        [paper_id],
    )
    return [_score(r) for r in rows]


def _score(r: Sequence[Any]) -> ThemeScore:
    return ThemeScore(theme=r[0], score=r[1], matched=bool(r[2]), why=tuple(json.loads(r[3])), terms=tuple(json.loads(r[4])))


def matched_papers(core: "Core", themes: Sequence[str], since: str, until: str) -> list[tuple[Paper, list[ThemeScore]]]:
    """Return arXiv papers announced on days in [since, until) that matched any of `themes`, best first.

    `since`/`until` are ISO dates or datetimes; only their day part is compared.
    """
    if not themes:
        return []
    marks = ",".join("?" * len(themes))
    rows = core.db.execute(
        f"SELECT t.paper_id, t.theme, t.score, t.matched, t.why_json, t.terms_json FROM paper_themes t"
        f" JOIN papers p ON p.id = t.paper_id WHERE p.origin = 'arxiv' AND t.matched = 1"
        f" AND t.theme IN ({marks}) AND p.announced >= ? AND p.announced < ? ORDER BY t.score DESC",
        [*themes, since[:10], until[:10]],
    ).fetchall()
    by_paper: dict[int, list[ThemeScore]] = {}
    for r in rows:
        by_paper.setdefault(r[0], []).append(_score(r[1:]))
    papers = get_papers(core, list(by_paper))
    return [(p, by_paper[p.id]) for p in papers]  # type: ignore[index]


def revisions_since(core: "Core", since: str) -> list[tuple[Paper, int]]:
    """Return papers that got a newer version (v2+) seen since `since`, with that version."""
    rows = core.db.execute(
        "SELECT p.id, r.version FROM paper_revisions r JOIN papers p ON p.arxiv_id = r.arxiv_id"
        " WHERE r.version > 1 AND r.seen_at >= ? AND r.version = p.version ORDER BY r.seen_at",
        [since],
    ).fetchall()
    versions = {r[0]: r[1] for r in rows}
    return [(p, versions[p.id]) for p in get_papers(core, list(versions))]  # type: ignore[index]


def posted_in(core: "Core", arxiv_id: str, workspace_prefix: str) -> list[tuple[str, str]]:
    """Return (channel key, sent time) for every channel under `workspace_prefix` that was sent this paper."""
    rows = core.db.execute(
        "SELECT channel, sent_at FROM sent_papers WHERE arxiv_id = ? AND substr(channel, 1, ?) = ? ORDER BY sent_at",
        [arxiv_id, len(workspace_prefix), workspace_prefix],
    )
    return [(r[0], r[1]) for r in rows]
