"""Bulk import of a reading list: one JSON object a line, checked completely before anything is written."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from .catalog import (
    _add_sources,
    _bump_version,
    _chunks,
    _paper_row,
    count_papers,
    get_papers,
    normalize_title,
    optimize_search_indexes,
    parse_arxiv_ref,
    store_many_scores,
)
from .errors import ImportLineError
from .models import Paper, SourceRef, ThemeScore
from .store import utcnow_iso

if TYPE_CHECKING:
    from .service import Core

@dataclass(frozen=True)
class ImportReport:
    """What `catalog import` did."""

    inserted: int
    merged: int


_JSON_LIST_FIELDS = ("authors", "affiliations", "categories")
"""List fields of an import line (plus `themes`, checked against the configured themes)."""


def parse_import_line(obj: Any, line: int, file: str) -> Paper:
    """Validate one decoded JSON line of a bulk import and return it as a Paper."""
    if not isinstance(obj, dict):
        raise ImportLineError(f"line {line}: expected a JSON object", line=line)
    title = obj.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ImportLineError(f"line {line}: `title` is required and must be a non-empty string", line=line)
    values: dict[str, Any] = {}
    for name in (*_JSON_LIST_FIELDS, "themes"):
        value = obj.get(name, [])
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ImportLineError(f"line {line}: `{name}` must be a list of strings", line=line)
        values[name] = tuple(value)
    for name in ("abstract", "published", "doi", "journal_ref"):
        if obj.get(name) is not None and not isinstance(obj[name], str):
            raise ImportLineError(f"line {line}: `{name}` must be a string", line=line)
    arxiv_id, version = None, None
    if obj.get("arxiv_id"):
        ref = parse_arxiv_ref(str(obj["arxiv_id"]))
        if ref is None:
            raise ImportLineError(f"line {line}: `arxiv_id` {obj['arxiv_id']!r} is not an arXiv id", line=line)
        arxiv_id, version = ref[0], ref[1] or obj.get("version")
    return Paper(
        title=" ".join(title.split()),
        abstract=" ".join((obj.get("abstract") or "").split()),
        authors=values["authors"],
        affiliations=values["affiliations"],
        categories=values["categories"],
        themes=values["themes"],
        arxiv_id=arxiv_id,
        version=version if isinstance(version, int) else None,
        published=obj.get("published"),
        doi=obj.get("doi"),
        journal_ref=obj.get("journal_ref"),
        origin="seed",
        sources=(SourceRef(file=file, line=line, kind="import"),),
    )


def read_import_file(path: Path) -> list[Paper]:
    """Parse a JSON-lines import file completely; raise ImportLineError naming the first bad line."""
    papers = []
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ImportLineError(f"line {number}: not valid JSON ({exc.msg})", line=number) from None
            papers.append(parse_import_line(obj, number, path.name))
    return papers


def check_import_themes(core: "Core", papers: Iterable[Paper]) -> None:
    """Raise ImportLineError for the first imported paper that names a theme that is not configured."""
    known = set(core.theme_names)
    for paper in papers:
        unknown = [t for t in paper.themes if t not in known]
        if unknown:
            line = paper.sources[0].line if paper.sources else 0
            raise ImportLineError(
                f"line {line}: unknown theme {unknown[0]!r}; themes: {', '.join(core.theme_names)}", line=line
            )


OPTIMIZE_MIN_PAPERS = 5000
"""An import of at least this many new papers (and a tenth of the catalog) ends by optimizing the search
indexes: one FTS5 segment per index keeps lookups on a large catalog fast (about 10 s at a million)."""


def import_papers(
    core: "Core",
    papers: Iterable[Paper],
    batch: int = 2000,
    tag: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Insert imported papers in one transaction; a paper whose arXiv id or title is known is merged.

    New papers keep the themes their line names; the others are tagged like fetched papers, by the
    matcher (skip with `tag=False`, e.g. to time the import alone). `progress(n)` is called after each
    batch with the number of papers just handled. A large import ends by optimizing the search indexes.
    """
    stamp = utcnow_iso(core.clock())
    inserted = merged = 0
    pending: list[Paper] = []
    new_ids: list[int] = []
    with core.db.atomic():
        for paper in papers:
            pending.append(paper)
            if len(pending) >= batch:
                added, joined = _import_batch(core, pending, stamp, new_ids)
                inserted, merged = inserted + added, merged + joined
                if progress is not None:
                    progress(len(pending))
                pending = []
        added, joined = _import_batch(core, pending, stamp, new_ids)
        if progress is not None and pending:
            progress(len(pending))
        _bump_version(core)
    inserted += added
    if inserted >= OPTIMIZE_MIN_PAPERS and inserted * 10 >= count_papers(core):
        optimize_search_indexes(core)
    if tag:
        _tag_imported(core, new_ids)
    return ImportReport(inserted=inserted, merged=merged + joined)


def _tag_imported(core: "Core", ids: Sequence[int], batch: int = 5000) -> None:
    from .match import get_matcher

    for chunk in _chunks(list(ids), batch):
        papers = get_papers(core, chunk)
        given = {p.id: p for p in papers if p.themes}
        scores: dict[int, Sequence[ThemeScore]] = {
            pid: [ThemeScore(theme=name, score=1.0, matched=True) for name in p.themes] for pid, p in given.items()
        }  # type: ignore[misc]
        rest = [p for p in papers if p.id not in given]
        if rest:
            for paper, theme_scores in zip(rest, get_matcher(core).score(rest)):
                scores[paper.id] = theme_scores  # type: ignore[index]
        store_many_scores(core, scores)


def _import_batch(core: "Core", papers: list[Paper], stamp: str, new_ids: list[int]) -> tuple[int, int]:
    fresh: list[Paper] = []
    merged = 0
    seen: dict[str, Paper] = {}
    for paper in papers:
        key = paper.arxiv_id or normalize_title(paper.title) or ""
        existing = _find_existing(core, paper)
        if existing is not None:
            _add_sources(core, existing, paper.sources)
            merged += 1
        elif key in seen:
            seen[key] = replace(seen[key], sources=seen[key].sources + paper.sources)
            merged += 1
        else:
            seen[key] = paper
    fresh = list(seen.values())
    if fresh:
        rows = [_paper_row(p, stamp) | {"created_at": stamp, "seed_key": None} for p in fresh]
        columns = list(rows[0])
        first = int(core.db.execute("SELECT coalesce(max(id), 0) FROM papers").fetchone()[0]) + 1
        ids = list(range(first, first + len(rows)))
        core.db.conn.executemany(
            f"INSERT INTO papers (id, {', '.join(columns)}) VALUES (?, {', '.join('?' * len(columns))})",
            [[pid, *row.values()] for pid, row in zip(ids, rows)],
        )
        core.db.conn.executemany(
            "INSERT OR REPLACE INTO paper_sources (paper_id, file, line, kind, title, text) VALUES (?, ?, ?, ?, ?, ?)",
            [(pid, s.file, s.line, s.kind, s.title, s.text) for pid, p in zip(ids, fresh) for s in p.sources],
        )
        core.db.conn.executemany(
            "INSERT INTO paper_themes (paper_id, theme, score, matched) VALUES (?, ?, 1.0, 1)",
            [(pid, name) for pid, p in zip(ids, fresh) for name in p.themes],
        )
        new_ids.extend(ids)
    return len(fresh), merged


def _find_existing(core: "Core", paper: Paper) -> int | None:
    if paper.arxiv_id:
        row = core.db.execute("SELECT id FROM papers WHERE arxiv_id = ?", [paper.arxiv_id]).fetchone()
        if row:
            return int(row[0])
    row = core.db.execute("SELECT id FROM papers WHERE title_norm = ?", [normalize_title(paper.title)]).fetchone()
    return int(row[0]) if row else None
