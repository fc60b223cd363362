"""Fetch orchestration: run recording, window fetches end to end against a loopback arXiv, enrichment."""

from __future__ import annotations

from digests.fetch import last_runs, record_run, runs_between
from digests.models import FetchRun


def _run(started: str, outcome: str = "ok", **kw) -> FetchRun:
    return FetchRun(
        id=None, started=started, finished=started, window_start="2026-11-18T12:00:00+00:00",
        window_end="2026-11-25T12:00:00+00:00", outcome=outcome, **kw,
    )


def test_record_run_round_trips_every_field(fresh_core):
    run = record_run(fresh_core, _run("2026-11-25T12:00:00+00:00", "failed", reason="boom",
                                      queries=("q1",), requests=3, pages=2, retries=1, papers=7,
                                      scanned={"cs.CL": 5, "cs.LG": 2}))
    assert run.id is not None
    assert last_runs(fresh_core, 1) == [run]


def test_last_runs_newest_first_and_runs_between_half_open(fresh_core):
    for day in ("2026-11-20", "2026-11-23", "2026-11-25"):
        record_run(fresh_core, _run(f"{day}T12:00:00+00:00"))
    assert [r.started[:10] for r in last_runs(fresh_core, 2)] == ["2026-11-25", "2026-11-23"]
    between = runs_between(fresh_core, "2026-11-20T12:00:00+00:00", "2026-11-25T12:00:00+00:00")
    assert [r.started[:10] for r in between] == ["2026-11-20", "2026-11-23"]
