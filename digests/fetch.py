"""Fetch orchestration: pull a window of arXiv papers, store and score them, record the run.

Every call to `fetch_window` leaves exactly one `fetch_runs` row, whatever happens, so a
quiet week ("empty") and a broken fetch ("failed") never look the same to the digests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .models import FetchRun, Paper, ThemeScore

if TYPE_CHECKING:
    from .service import Core


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


def record_run(core: "Core", run: FetchRun) -> FetchRun:
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
    table = core.db["fetch_runs"]
    if run.id is not None:
        table.update(run.id, row)
        return run
    table.insert(row)
    from dataclasses import replace

    return replace(run, id=table.last_pk)


def last_runs(core: "Core", n: int = 10) -> list[FetchRun]:
    """Return the `n` most recent fetch runs, newest first."""
    rows = core.db.query("SELECT * FROM fetch_runs ORDER BY started DESC, id DESC LIMIT ?", [n])
    return [_row_to_run(r) for r in rows]


def runs_between(core: "Core", start: str | datetime, end: str | datetime) -> list[FetchRun]:
    """Return the runs that started in [start, end) (ISO strings or datetimes), oldest first."""
    from .store import utcnow_iso

    lo = start if isinstance(start, str) else utcnow_iso(start)
    hi = end if isinstance(end, str) else utcnow_iso(end)
    rows = core.db.query(
        "SELECT * FROM fetch_runs WHERE started >= ? AND started < ? ORDER BY started, id", [lo, hi]
    )
    return [_row_to_run(r) for r in rows]
