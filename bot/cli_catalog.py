"""Catalog commands: `papers`, `paper`, `themes`, `catalog import`, `db path`, and the offline `demo`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .cli_common import friendly_errors, get_core, json_option, print_json


def _authors(authors: Any, n: int = 3) -> str:
    names = list(authors)
    return ", ".join(names[:n]) + (" et al." if len(names) > n else "")


def _echo_paper(paper: Any, score: float | None = None) -> None:
    head = paper.display_title + (f"  [{score:.2f}]" if score is not None else "")
    click.echo(click.style(head, bold=True))
    details = [d for d in (_authors(paper.authors), paper.published and paper.published[:10]) if d]
    if details:
        click.echo("  " + " · ".join(details))
    click.echo("  " + (paper.url or "arXiv id not known yet"))
    if paper.themes:
        click.echo("  themes: " + ", ".join(paper.themes))
    click.echo("  sources: " + ", ".join(f"{s.file}:{s.line}" for s in paper.sources))


@click.command()
@click.option("--theme", "-t", help="Only papers tagged with this theme.")
@json_option
@friendly_errors
def papers(theme: str | None, as_json: bool) -> None:
    """List the catalog: the merged seed papers and every arXiv paper fetched so far.

    \b
    Example:
        digestbot papers --theme rlhf
        digestbot papers --json | jq '.[].title'
    """
    from digests.catalog import list_papers
    from digests.models import paper_to_dict

    core = get_core()
    found = list_papers(core, theme=theme)
    if as_json:
        print_json([paper_to_dict(p) for p in found])
        return
    for paper in found:
        _echo_paper(paper)
    click.echo(f"{len(found)} papers")


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("query", nargs=-1, required=True)
@click.option("--limit", "-n", default=5, show_default=True, type=click.IntRange(1, 100), help="Most results.")
@json_option
@friendly_errors
def paper(query: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Look a paper up: the same search `/paper` uses in Slack and Discord.

    QUERY is an arXiv id (with or without version), an arXiv abs/pdf URL, an
    exact or partial title, or free words. Results are ranked best first.

    \b
    Example:
        digestbot paper constitutional ai
        digestbot paper 2212.08073v2 --json
    """
    from digests.lookup import search, suggest_titles
    from digests.models import paper_to_dict

    text = " ".join(query)
    core = get_core()
    results = search(core, text, limit=limit)
    if as_json:
        print_json([paper_to_dict(p) | {"score": s} for p, s in results])
        return
    if not results:
        close = suggest_titles(core, text)
        hint = ("  Closest titles: " + "; ".join(close)) if close else ""
        click.echo(f"No paper matches that.{hint}")
        return
    for found, score in results:
        _echo_paper(found, score)


@click.command()
@json_option
@friendly_errors
def themes(as_json: bool) -> None:
    """List the themes channels can subscribe to, with keywords and exemplar papers.

    Add or edit themes with [[themes]] tables in your config file (see
    config/digestbot.example.toml); no code changes needed.

    \b
    Example:
        digestbot themes
        digestbot themes --json
    """
    core = get_core()
    if as_json:
        print_json(
            [
                {
                    "name": t.name,
                    "label": t.label,
                    "description": t.description,
                    "keywords": [k.lstrip("~") for k in t.keywords],
                    "weak_keywords": [k[1:] for k in t.keywords if k.startswith("~")],
                    "categories": list(t.categories),
                    "exemplars": list(t.exemplars),
                    "threshold": t.threshold,
                }
                for t in core.themes
            ]
        )
        return
    for t in core.themes:
        click.echo(click.style(f"{t.name}", bold=True) + f"  {t.label}: {t.description}")


@click.group()
def catalog_group() -> None:
    """Manage the paper catalog.

    \b
    Example:
        digestbot catalog import reading-list.jsonl
    """


@catalog_group.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@friendly_errors
def import_(file: Path, as_json: bool) -> None:
    """Import papers from FILE, one JSON object a line (the fields of `papers --json`; `title` required).

    Every line is checked before anything is written: a bad line is reported
    with its line number and nothing is imported. A paper whose arXiv id or
    title is already in the catalog gets this file as one more source.

    \b
    Example:
        digestbot catalog import reading-list.jsonl
    """
    from digests.importer import check_import_themes, import_papers, read_import_file

    papers = read_import_file(file)
    core = get_core()
    check_import_themes(core, papers)
    if as_json or not sys.stderr.isatty():
        report = import_papers(core, papers)
    else:  # a progress bar on a terminal only: a large list takes minutes
        with click.progressbar(length=len(papers), label="Importing papers", file=sys.stderr, show_pos=True) as bar:
            report = import_papers(core, papers, progress=bar.update)
    if as_json:
        print_json({"inserted": report.inserted, "merged": report.merged})
    else:
        click.echo(f"Imported {report.inserted} papers ({report.merged} already in the catalog, merged).")


catalog_group.name = "catalog"


@click.group()
def db_group() -> None:
    """Where digestbot keeps its data.

    \b
    Example:
        digestbot db path
    """


@db_group.command(name="path")
@friendly_errors
def db_path() -> None:
    """Print the path of the SQLite database ($DIGESTBOT_HOME/digestbot.db).

    \b
    Example:
        sqlite3 "$(digestbot db path)" .tables
    """
    from digests.settings import load_settings

    click.echo(str(load_settings().db_path))


db_group.name = "db"


DEMO_PAGE = "demo-arxiv-week.xml"
"""A real arXiv API page (50 cs.AI/cs.LG papers, recorded 2026-07-13) standing in for this week offline."""
DEMO_QUERY = "scalable oversight"


@click.command()
@click.option("--query", default=DEMO_QUERY, show_default=True, help="The sample /paper lookup to answer.")
@friendly_errors
def demo(query: str) -> None:
    """Show the whole job offline in a few seconds, with no tokens and no network.

    Loads the seed catalog into a fresh throwaway database, ingests a recorded
    arXiv page (real papers, served in-process through the same fetch, scoring
    and storage code as `digestbot fetch`) as this week's announcements, builds
    this week's digest for a console channel subscribed to every theme, prints it
    as it would be posted, then answers a sample `/paper` lookup.

    \b
    Example:
        digestbot demo
        digestbot demo --query "weak to strong"
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="digestbot-demo-") as home:
        _run_demo(Path(home), query)


def _run_demo(home: Path, query: str) -> None:
    import httpx

    from digests.arxiv_api import ArxivClient
    from digests.build import build_digest
    from digests.catalog import count_papers, seed_papers
    from digests.channels import subscribe
    from digests.fetch import fetch_window
    from digests.service import open_core
    from digests.settings import PROJECT_ROOT, load_settings

    from .commands import Invocation, run_text
    from .render_text import render_text

    settings = load_settings({"DIGESTBOT_HOME": str(home)})
    core = open_core(settings)
    seeds = seed_papers(core)
    sources = sum(len(p.sources) for p in seeds)
    click.secho(f"Seed catalog: {sources} listings in {len(list(settings.seeds_dir.glob('*.txt')))} seed files "
                f"merged into {len(seeds)} papers, tagged with {len(core.themes)} themes.", bold=True)
    page = (PROJECT_ROOT / "config" / DEMO_PAGE).read_bytes()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=page))
    now = core.clock()
    client = ArxivClient.from_settings(settings, transport=transport, delay_seconds=0.0)
    report = fetch_window(core, now, client=client)
    client.close()
    matched = sum(1 for scores in report.scores.values() if any(s.matched for s in scores))
    click.secho(f"This week (offline: a recorded arXiv page stands in): {len(report.papers)} papers scanned, "
                f"{matched} matched a theme; catalog now holds {count_papers(core)} papers.", bold=True)
    channel = "console:demo"
    subscribe(core, channel, list(core.theme_names))
    click.echo()
    click.secho(f"── Digest for {channel}, as it would be posted ──", fg="cyan", bold=True)
    click.echo(render_text(build_digest(core, channel, core.clock())))
    click.echo()
    click.secho(f"── /paper {query} ──", fg="cyan", bold=True)
    reply = run_text(core, Invocation(platform="console", channel=channel, user="demo"), "paper", query)
    click.echo(render_text(reply))
    click.echo()
    click.echo("Next: `digestbot console` to try /paper and /digest yourself; `digestbot --help` for everything.")
