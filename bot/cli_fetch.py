"""`digestbot fetch`: pull the week's arXiv papers, store and score them; `--status` shows past runs."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from bot.cli_common import friendly_errors, get_core, is_tty, json_option, print_json

FAILED_HINT = "The run is recorded; `digestbot fetch --status` shows it. Try again later."


def paper_json(paper: Any, scores: list[Any]) -> dict[str, Any]:
    """Return the `fetch --json` object for one fetched paper and its theme scores."""
    return {
        "arxiv_id": paper.arxiv_id,
        "version": paper.version,
        "title": paper.title,
        "authors": list(paper.authors),
        "categories": list(paper.categories),
        "primary_category": paper.primary_category,
        "published": paper.published,
        "updated": paper.updated,
        "scores": {s.theme: round(float(s.score), 6) for s in scores},
        "matched": [s.theme for s in scores if s.matched],
        "why": {s.theme: list(s.why) for s in scores if s.matched},
    }


BAR_WIDTH = 24


def _bar(done: int, total: int | None) -> str:
    if not total:
        return ""
    filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
    return "[" + "#" * filled + " " * (BAR_WIDTH - filled) + "] "


def _progress(pages: int, papers: int, total: int | None) -> None:
    of = f"/{total}" if total is not None else ""
    click.echo(f"\rFetching arXiv {_bar(papers, total)}page {pages}, {papers}{of} papers ", nl=False, err=True)


def _enrich_progress(done: int, adopted: int, total: int | None) -> None:
    click.echo(f"\rLooking up seeds on arXiv {_bar(done, total)}{done}/{total}, {adopted} matched ", nl=False, err=True)


def _run_line(run: Any) -> str:
    from bot.cli_run import last_covered_day

    scanned = ", ".join(f"{cat} {n}" for cat, n in sorted(run.scanned.items(), key=lambda kv: -kv[1]))
    last = last_covered_day(run.window_end)  # the window end is exclusive: show the last day it covered
    line = (
        f"{run.started[:16].replace('T', ' ')}  {run.outcome:<6}  window {run.window_start[:10]}..{last}"
        f"  {run.papers} papers, {run.pages} pages, {run.requests} requests, {run.retries} retries"
    )
    if scanned:
        line += f"  [{scanned}]"
    if run.reason:
        line += f"\n    {run.reason}"
    return line


def _show_status(core: Any, as_json: bool) -> None:
    from digests.fetch import last_runs

    runs = last_runs(core, 10)
    if as_json:
        print_json([dataclasses.asdict(r) for r in runs])
    elif not runs:
        click.echo("No fetch has run yet. Run `digestbot fetch` to pull this week's papers.")
    else:
        for run in runs:
            click.echo(_run_line(run))


def _enrich(core: Any, as_json: bool) -> None:
    from digests.arxiv_api import ArxivClient
    from digests.fetch import enrich_seeds

    with ArxivClient.from_settings(core.settings, db=core.db, now=core.clock) as client:
        report = enrich_seeds(core, client, progress=_enrich_progress if is_tty() and not as_json else None)
    if is_tty() and not as_json:
        click.echo(err=True)
    if as_json:
        print_json(
            {
                "adopted": [
                    {"paper_id": p.id, "title": r.title, "arxiv_id": r.arxiv_id, "version": r.version}
                    for p, r in report.adopted
                ],
                "unmatched": [p.display_title for p in report.unmatched],
                "failed": [{"title": p.display_title, "reason": why} for p, why in report.failed],
            }
        )
        return
    click.echo(
        f"Adopted arXiv records for {len(report.adopted)} seed papers; "
        f"{len(report.unmatched)} had no confident match; {len(report.failed)} lookups failed."
    )
    for _seed, record in report.adopted:
        click.echo(f"  arXiv:{record.arxiv_id}  {record.title}")
    for paper in report.unmatched:
        click.echo(f"  no match: {paper.display_title}")
    for paper, why in report.failed:
        click.echo(f"  failed:   {paper.display_title}: {why}")


@click.command()
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 90), help="How many days back to fetch.")
@json_option
@click.option("--status", is_flag=True, help="Show the last fetch runs instead of fetching.")
@click.option("--enrich", is_flag=True, help="Look up arXiv ids for seed papers that have none (instead of fetching).")
@friendly_errors
def fetch(days: int, as_json: bool, status: bool, enrich: bool) -> None:
    """Fetch new arXiv papers in your themes' categories, then store and score them.

    Asks arXiv politely (one request every 3 seconds) and caches each query for the
    announcement day. Every run is recorded, so a quiet week and a broken fetch never
    look alike; --status lists the last runs. With --json, prints one JSON array with
    one object per fetched paper (scores, matched themes, and why).

    \b
    Example:
        digestbot fetch
        digestbot fetch --days 3 --json
        digestbot fetch --status
        digestbot fetch --enrich
    """
    core = get_core()
    if status:
        _show_status(core, as_json)
        return
    if enrich:
        _enrich(core, as_json)
        return
    from digests.fetch import fetch_window

    show_progress = is_tty() and not as_json
    report = fetch_window(core, core.clock(), days=days, progress=_progress if show_progress else None)
    if show_progress:
        click.echo(err=True)
    run = report.run
    if as_json:
        print_json([paper_json(p, report.scores.get(p.id, [])) for p in report.papers])
    else:
        matched = [p for p in report.papers if any(s.matched for s in report.scores.get(p.id, []))]
        click.echo(_run_line(run))
        click.echo(f"{len(report.papers)} papers stored; {len(matched)} matched a theme.")
        for paper in matched:
            themes = ", ".join(s.theme for s in report.scores.get(paper.id, []) if s.matched)
            click.echo(f"  arXiv:{paper.arxiv_id}  {paper.display_title}  [{themes}]")
    if run.outcome == "failed":
        raise click.ClickException(f"arXiv fetch failed: {run.reason}. {FAILED_HINT}")
