"""Fetch orchestration: pull a window of arXiv papers, store and score them, record the run.

Every call to `fetch_window` leaves exactly one `fetch_runs` row, whatever happens, so a
quiet week ("empty") and a broken fetch ("failed") never look the same to the digests.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import ArxivError
from .models import FetchRun, Paper, ThemeScore

if TYPE_CHECKING:
    from .arxiv_api import ArxivClient, ClientStats, ProgressFn, QueryResult
    from .service import Core

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchReport:
    """The outcome of one fetch: the recorded run, the papers stored, and their theme scores."""

    run: FetchRun
    papers: list[Paper] = field(default_factory=list)
    scores: dict[int, list[ThemeScore]] = field(default_factory=dict)


def _row_to_run(row: dict[str, Any]) -> FetchRun:
    return FetchRun(
        id=row["id"],
        started=row["started"],
        finished=row["finished"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        outcome=row["outcome"],
        reason=row["reason"],
        queries=tuple(json.loads(row["queries_json"] or "[]")),
        requests=row["requests"],
        pages=row["pages"],
        retries=row["retries"],
        papers=row["papers"],
        scanned=dict(json.loads(row["scanned_json"] or "{}")),
    )


def record_run(core: Core, run: FetchRun) -> FetchRun:
    """Insert (or update, when `run.id` is set) one fetch_runs row and return the run with its id."""
    row = {
        "started": run.started,
        "finished": run.finished,
        "window_start": run.window_start,
        "window_end": run.window_end,
        "outcome": run.outcome,
        "reason": run.reason,
        "queries_json": json.dumps(list(run.queries)),
        "requests": run.requests,
        "pages": run.pages,
        "retries": run.retries,
        "papers": run.papers,
        "scanned_json": json.dumps(run.scanned, sort_keys=True),
    }
    table = core.db.table("fetch_runs")
    if run.id is not None:
        table.update(run.id, row)
        return run
    table.insert(row)
    return replace(run, id=table.last_pk)


def last_runs(core: Core, n: int = 10) -> list[FetchRun]:
    """Return the `n` most recent fetch runs, newest first."""
    rows = core.db.query("SELECT * FROM fetch_runs ORDER BY started DESC, id DESC LIMIT ?", [n])
    return [_row_to_run(r) for r in rows]


def _as_utc_iso(when: str | datetime) -> str:
    from .store import utcnow_iso

    if isinstance(when, str):
        when = datetime.fromisoformat(when)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return utcnow_iso(when)


def runs_between(core: Core, start: str | datetime, end: str | datetime) -> list[FetchRun]:
    """Return the runs that started in [start, end], oldest first.

    Bounds are datetimes or ISO strings in any offset (normalised to UTC before comparing); the end is
    inclusive so a run started at the very instant a digest is built still counts.
    """
    rows = core.db.query(
        "SELECT * FROM fetch_runs WHERE started >= ? AND started <= ? ORDER BY started, id",
        [_as_utc_iso(start), _as_utc_iso(end)],
    )
    return [_row_to_run(r) for r in rows]


DEFAULT_CATEGORIES = ("cs.AI", "cs.CL", "cs.LG")
"""Queried when no theme lists a category (the themes' natural home on arXiv)."""


def window_bounds(now: datetime, days: int) -> tuple[datetime, datetime]:
    """Return the fetch window: `days` whole UTC days ending at the end of `now`'s day.

    Whole days keep the query URL identical all day, so the daily cache answers a repeat fetch.
    """
    end = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return end - timedelta(days=max(1, days)), end


def query_categories(core: Core) -> tuple[str, ...]:
    """Return the union of the themes' arXiv categories, in theme order (defaults when none)."""
    cats = dict.fromkeys(c for theme in core.themes for c in theme.categories)
    return tuple(cats) or DEFAULT_CATEGORIES


def _scanned(papers: list[Paper], cats: tuple[str, ...]) -> dict[str, int]:
    """Count papers per category, each paper once: its primary category when queried, else its first queried one.

    Counting each paper once keeps sum(scanned.values()) equal to the papers scanned, for coverage lines.
    """
    counts: dict[str, int] = {}
    wanted = set(cats)
    for paper in papers:
        primary = paper.primary_category
        cat = primary if primary in wanted else next((c for c in paper.categories if c in wanted), primary)
        counts[cat or "unknown"] = counts.get(cat or "unknown", 0) + 1
    return counts


def _store_and_score(core: Core, papers: list[Paper], now: datetime) -> tuple[list[Paper], dict[int, list[ThemeScore]]]:
    from .catalog import upsert_arxiv_papers

    upserted = upsert_arxiv_papers(core, papers, now)
    by_id = {p.arxiv_id: p for p in upserted.new + upserted.revised + upserted.unchanged}
    stored = [by_id.get(p.arxiv_id, p) for p in papers]
    from .match import get_matcher, score_and_store

    # A fetched paper that turned out to be a seed keeps its seed theme tags: score it, don't store it.
    seeds = [p for p in stored if p.origin == "seed"]
    scores = score_and_store(core, [p for p in stored if p.origin != "seed"])
    if seeds:
        scores.update({p.id: s for p, s in zip(seeds, get_matcher(core).score(seeds), strict=True) if p.id is not None})
    return stored, scores


def fetch_window(
    core: Core,
    now: datetime,
    days: int = 7,
    client: ArxivClient | None = None,
    progress: ProgressFn | None = None,
) -> FetchReport:
    """Fetch the last `days` days of papers in the themes' categories, store, score and record the run.

    Never raises for arXiv trouble: the run comes back (and is recorded) as `failed` with the reason,
    holding whatever was fetched before it broke. Anything else is recorded as failed, then re-raised.
    """
    from .arxiv_api import ArxivClient, QueryResult, build_window_query

    start, end = window_bounds(now, days)
    cats = query_categories(core)
    query = build_window_query(cats, start, end)
    own_client = client is None
    client = client or ArxivClient.from_settings(core.settings, db=core.db, now=core.clock)
    before = replace(client.stats)
    # Recorded up front as failed, so even a killed process leaves an honest row behind.
    run = record_run(core, _started_run(now, start, end, query))
    result = QueryResult(query=query)
    outcome, reason = "ok", None
    papers: list[Paper] = []
    scores: dict[int, list[ThemeScore]] = {}
    try:
        try:
            client.fetch_query(query, window_start=run.window_start, result=result, progress=progress)
        except ArxivError as exc:
            outcome, reason = "failed", str(exc)
        if outcome == "ok":
            reason = _partial_note(result)
        if result.papers:
            papers, scores = _store_and_score(core, _dedupe(result.papers), now)
        elif outcome == "ok":
            outcome, reason = "empty", f"arXiv has no papers in {', '.join(cats)} for this window"
        if outcome != "failed":
            seen = {p.arxiv_id for p in result.papers if p.arxiv_id}
            checked, note = _check_posted_versions(core, client, run.window_start, now, seen)
            run = replace(run, queries=run.queries + checked)
            reason = "; ".join(r for r in (reason, note) if r) or None
    except BaseException as exc:
        outcome, reason = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        run = record_run(core, _finished_run(core, run, outcome, reason, client.stats, before, result, cats))
        if own_client:
            client.close()
    return FetchReport(run=run, papers=papers, scores=scores)


REVISION_WEEKS = 8
"""Papers sent to a channel are checked for new versions for this many weeks (for "v2 posted")."""
ID_LIST_CHUNK = 100
"""arXiv ids per `id_list` request when checking posted papers for new versions."""


def posted_before_window(core: Core, window_start: str, now: datetime) -> list[str]:
    """Return the arXiv ids sent in the last REVISION_WEEKS whose first version predates the window.

    The window query only sees papers first submitted inside it; a new version of an older paper that
    a channel was already sent would otherwise never be seen.
    """
    from .store import utcnow_iso

    rows = core.db.execute(
        "SELECT DISTINCT s.arxiv_id FROM sent_papers s JOIN papers p ON p.arxiv_id = s.arxiv_id"
        " WHERE s.sent_at >= ? AND (p.published IS NULL OR p.published < ?) ORDER BY s.arxiv_id",
        [utcnow_iso(now - timedelta(weeks=REVISION_WEEKS)), window_start],
    ).fetchall()
    return [r[0] for r in rows]


def _check_posted_versions(
    core: Core, client: ArxivClient, window_start: str, now: datetime, seen: set[str]
) -> tuple[tuple[str, ...], str | None]:
    """Look posted papers up by id and store any newer version; return the queries sent and a failure note.

    A failure here does not fail the run (the window itself was scanned); it is noted in the reason.
    """
    from .catalog import upsert_arxiv_papers

    ids = [i for i in posted_before_window(core, window_start, now) if i not in seen]
    queries: list[str] = []
    for offset in range(0, len(ids), ID_LIST_CHUNK):
        chunk = ids[offset : offset + ID_LIST_CHUNK]
        queries.append(f"id_list={','.join(chunk)}")
        label = f"id_list of {len(chunk)} posted papers"
        try:
            page = client.request_page({"id_list": ",".join(chunk), "max_results": len(chunk)}, query=label)
        except ArxivError as exc:
            return tuple(queries), f"could not check {len(ids)} posted papers for new versions: {exc}"
        wanted = set(chunk)
        records = _dedupe([p for p in page.papers if p.arxiv_id in wanted])
        if records:
            upsert_arxiv_papers(core, records, now)
    return tuple(queries), None


_STOPPED = {
    "cap": "stopped at the result cap; arXiv serves at most 30,000 per query",
    "no-new-ids": "arXiv sent a page with no papers not seen before",
}


def _partial_note(result: QueryResult) -> str | None:
    """Say so when paging stopped short of the total arXiv reported, so an incomplete scan is never silent."""
    if result.stopped in _STOPPED and result.total is not None and len(result.papers) < result.total:
        scanned = f"scanned {len(result.papers)} of the {result.total} results arXiv reported"
        return f"partial: {scanned} ({_STOPPED[result.stopped]})"
    return None


def _started_run(now: datetime, start: datetime, end: datetime, query: str) -> FetchRun:
    from .store import utcnow_iso

    return FetchRun(
        id=None,
        started=utcnow_iso(now),
        finished=None,
        window_start=utcnow_iso(start),
        window_end=utcnow_iso(end),
        outcome="failed",
        reason="interrupted",
        queries=(query,),
    )


def _finished_run(
    core: Core,
    run: FetchRun,
    outcome: str,
    reason: str | None,
    stats: ClientStats,
    before: ClientStats,
    result: QueryResult,
    cats: tuple[str, ...],
) -> FetchRun:
    from .store import utcnow_iso

    return replace(
        run,
        finished=utcnow_iso(core.clock()),
        outcome=outcome,  # type: ignore[arg-type]
        reason=reason,
        requests=stats.requests - before.requests,
        pages=stats.pages - before.pages + stats.cache_hits - before.cache_hits,
        retries=stats.retries - before.retries,
        papers=len(result.papers),
        scanned=_scanned(result.papers, cats),
    )


def _dedupe(papers: list[Paper]) -> list[Paper]:
    """Keep one record per arXiv id, the highest version, in first-seen order."""
    best: dict[str, Paper] = {}
    for paper in papers:
        key = paper.arxiv_id or ""
        old = best.get(key)
        if old is None or (paper.version or 0) > (old.version or 0):
            best[key] = paper
    return list(best.values())


# -- enrichment --------------------------------------------------------------------------------

TITLE_OVERLAP = 0.85
"""Jaccard overlap of title words above which a differently punctuated title still counts as the same."""
ABSTRACT_CONTAINMENT = 0.8
"""Share of a seed's abstract-opening words that must appear in the arXiv abstract (untitled seeds)."""
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to we with our which "
    "these their can not but also how what when where into than more such use using via".split()
)


@dataclass(frozen=True)
class EnrichReport:
    """What `enrich_seeds` did: seeds given an arXiv record, seeds left alone, and lookups that failed."""

    adopted: list[tuple[Paper, Paper]] = field(default_factory=list)
    """(seed paper after adoption, the arXiv record it adopted)."""
    unmatched: list[Paper] = field(default_factory=list)
    failed: list[tuple[Paper, str]] = field(default_factory=list)


def _words(text: str | None) -> list[str]:
    from .catalog import normalize_title

    return (normalize_title(text) or "").split()


def enrich_query(seed: Paper) -> str | None:
    """Return the arXiv search for a seed: `ti:"…"` from its title, else `abs:` terms from its abstract opening."""
    if seed.title:
        words = _words(seed.title)
        return f'ti:"{" ".join(words)}"' if words else None
    return _abstract_query(seed)


def enrich_queries(seed: Paper) -> list[str]:
    """Return the searches to try in turn: the title phrase, then the abstract opening of a paper listing.

    The fallback finds titled seeds whose title phrase arXiv's tokenizer splits differently ("Isn't",
    "DALL·E") or whose listing gave the work another title; confidence is still checked on each result.
    """
    first = enrich_query(seed)
    queries = [first] if first else []
    if seed.title and _has_paper_text(seed):
        fallback = _abstract_query(seed)
        if fallback:
            queries.append(fallback)
    return queries


def _abstract_query(seed: Paper) -> str | None:
    opening = [w for w in _words(seed.abstract)[:40] if w not in _STOPWORDS and len(w) > 3 and not w.isdigit()]
    distinctive = sorted(dict.fromkeys(opening), key=len, reverse=True)[:6]
    return " AND ".join(f"abs:{w}" for w in distinctive) if len(distinctive) >= 3 else None


def _has_paper_text(seed: Paper) -> bool:
    """True when the seed has an abstract that is not only a blog teaser."""
    blog_only = bool(seed.sources) and all(s.kind == "blog_index" for s in seed.sources)
    return bool(seed.abstract) and not blog_only


def is_confident_match(seed: Paper, record: Paper) -> bool:
    """Return True when an arXiv record is surely the seed's paper (same title, or the abstract opening agrees)."""
    if seed.title:
        a, b = set(_words(seed.title)), set(_words(record.title))
        if not a or not b:
            return False
        if a == b and _words(seed.title) == _words(record.title):
            # A blog headline is no paper title: the same words on arXiv may be another work.
            return _has_paper_text(seed) or _containment(seed.abstract, record.abstract, 0.5)
        if len(a & b) / len(a | b) >= TITLE_OVERLAP and _containment(seed.abstract, record.abstract, 0.5):
            return True
        # Another title for the same abstract (a lab page's own title): the paper text must agree.
        return _has_paper_text(seed) and _containment(seed.abstract, record.abstract, ABSTRACT_CONTAINMENT)
    return _containment(seed.abstract, record.abstract, ABSTRACT_CONTAINMENT)


def _containment(seed_text: str | None, record_text: str | None, share: float) -> bool:
    seed_words = set(_words(" ".join((seed_text or "").split()[:40])))
    if not seed_words:
        return True
    return len(seed_words & set(_words(record_text))) / len(seed_words) >= share


def enrich_seeds(core: Core, client: ArxivClient, progress: ProgressFn | None = None) -> EnrichReport:
    """Look up seed papers without an arXiv id and adopt id, title and authors on a confident match only."""
    from .catalog import adopt_arxiv_record, seed_papers
    from .errors import CatalogError

    report = EnrichReport()
    todo = [p for p in seed_papers(core) if not p.arxiv_id]
    for n, seed in enumerate(todo, 1):
        queries = enrich_queries(seed)
        try:
            match = _first_confident(client, seed, queries)
            if match is None:
                report.unmatched.append(seed)
                log.info("no confident arXiv match for seed %r (queries %s)", seed.display_title, queries)
            else:
                report.adopted.append((adopt_arxiv_record(core, seed.id, match), match))  # type: ignore[arg-type]
        except (ArxivError, CatalogError) as exc:
            report.failed.append((seed, str(exc)))
            log.info("enrichment lookup failed for %r: %s", seed.display_title, exc)
        if progress:
            progress(n, len(report.adopted), len(todo))
    return report


def _first_confident(client: ArxivClient, seed: Paper, queries: list[str]) -> Paper | None:
    for query in queries:
        match = next((c for c in client.search_papers(query) if is_confident_match(seed, c)), None)
        if match is not None:
            return match
    return None


MISSING_ID_TTL = timedelta(hours=1)
"""How long an id arXiv said does not exist is answered from memory (`core.cache`) before asking again."""
_MISSING_KEY = "arxiv_missing_ids"


def _missing_ids(core: Core) -> dict[str, datetime]:
    """Return the in-memory {arXiv id: when arXiv said it has no such paper} map of this process."""
    missing = core.cache.get(_MISSING_KEY)
    if not isinstance(missing, dict):
        missing = core.cache[_MISSING_KEY] = {}
    return missing


def known_missing(core: Core, arxiv_id: str, now: datetime | None = None) -> bool:
    """True when arXiv said within the last MISSING_ID_TTL that it has no paper `arxiv_id`."""
    when = _missing_ids(core).get(arxiv_id.strip())
    return when is not None and (now or core.clock()) - when < MISSING_ID_TTL


def _remember_missing(core: Core, arxiv_id: str, now: datetime) -> None:
    missing = _missing_ids(core)
    for key in [k for k, when in missing.items() if now - when >= MISSING_ID_TTL]:
        missing.pop(key, None)  # expired: keep the map as small as the last hour's typos
    missing[arxiv_id.strip()] = now


def _as_first_seen(record: Paper) -> Paper:
    """Date a looked-up paper by its first version, not by today.

    A fetched paper without an announcement day is stamped with the day it was stored, and digests pick
    papers by that day; a paper looked up by id may be years old and must not reach a digest as "new".
    """
    if record.announced:
        return record
    first = (record.published or record.updated or "")[:10] or None
    return replace(record, announced=first) if first else record


def lookup_and_store(core: Core, arxiv_id: str, client: ArxivClient | None = None) -> Paper | None:
    """Fetch one paper by arXiv id (for `/paper` on an id the catalog lacks), store and score it.

    Returns the stored Paper (with its catalog id), or None when arXiv has no such paper. A missing id is
    remembered for MISSING_ID_TTL (in `core.cache`, by `core.clock()`) and answered None without a request.
    Network trouble raises ArxivError and is not remembered. The paper is stored with its first version's
    date as its announcement day, so an old paper looked up today never counts as new in a digest.
    """
    from .arxiv_api import ArxivClient

    now = core.clock()
    if known_missing(core, arxiv_id, now):
        return None
    own = client is None
    client = client or ArxivClient.from_settings(core.settings, db=core.db, now=core.clock)
    try:
        record = client.lookup_id(arxiv_id)
    finally:
        if own:
            client.close()
    if record is None:
        _remember_missing(core, arxiv_id, now)
        return None
    stored, _ = _store_and_score(core, [_as_first_seen(record)], now)
    return stored[0]
