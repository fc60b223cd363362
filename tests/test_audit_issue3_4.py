"""Audit of issues 3 and 4: each test pins one sentence of the issue text that had no test of its own.

Real SQLite in tmp dirs, a real loopback arXiv on port 0 serving files from tests/fixtures/realdata,
the real CLI (CliRunner, or the `digestbot` entry point in a subprocess where a terminal matters).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REALDATA
from test_arxiv_api import (
    NOW,
    QUERY,
    FakeArxiv,
    FakeTime,
    build_feed,
    ok,
    real,
    real_entries,
    unique_entries,
)

from bot.cli import cli
from digests.arxiv_api import MAX_BACKOFF_SECONDS, ArxivClient
from digests.arxiv_feed import parse_atom
from digests.errors import ArxivThrottledError
from digests.fetch import fetch_window, last_runs

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def arxiv():
    fake = FakeArxiv()
    yield fake
    fake.close()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def _client(url: str, fake_time: FakeTime, **kw) -> ArxivClient:
    options = {
        "user_agent": "t (mailto:a@b.c)",
        "sleep": fake_time.sleep,
        "monotonic": fake_time.monotonic,
    }
    options["now"] = lambda: NOW
    options.update(kw)
    return ArxivClient(url, **options)


def _core_client(core, url: str, **kw) -> ArxivClient:
    fake_time = FakeTime()
    options = {"sleep": fake_time.sleep, "monotonic": fake_time.monotonic, "retries": 2}
    options.update(kw)
    settings = core.settings.__class__(**{**core.settings.__dict__, "arxiv_api_url": url})
    return ArxivClient.from_settings(settings, db=core.db, now=core.clock, **options)


def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# -- issue 4, faults: "429 and 503 (honour Retry-After, bounded exponential back-off)" ----------------


def test_503_with_retry_after_is_honoured(arxiv, fake_time):
    arxiv.replies.extend(
        [
            (503, real("arxiv_web_2026_rate_exceeded_body.txt"), {"Retry-After": "42"}),
            ok(build_feed(real_entries()[:2], 2)),
        ]
    )
    with _client(arxiv.url, fake_time, delay_seconds=3.0) as client:
        assert len(client.fetch_query(QUERY).papers) == 2
    assert fake_time.sleeps == [42.0] and client.stats.retries == 1


def test_429_with_an_http_date_retry_after_is_honoured(arxiv, fake_time):
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    arxiv.replies.extend(
        [
            (429, real("arxiv_web_2026_rate_exceeded_body.txt"), {"Retry-After": when}),
            ok(build_feed(real_entries()[:1], 1)),
        ]
    )
    with _client(arxiv.url, fake_time) as client:
        assert len(client.fetch_query(QUERY).papers) == 1
    assert fake_time.sleeps == [90.0]


def test_back_off_doubles_and_is_bounded(arxiv, fake_time):
    arxiv.handler = lambda q: (503, real("arxiv_web_2026_rate_exceeded_body.txt"), {})
    with (
        _client(arxiv.url, fake_time, delay_seconds=3.0, retries=7) as client,
        pytest.raises(ArxivThrottledError),
    ):
        client.fetch_query(QUERY)
    assert fake_time.sleeps == [
        3.0,
        6.0,
        12.0,
        24.0,
        48.0,
        MAX_BACKOFF_SECONDS,
        MAX_BACKOFF_SECONDS,
    ]
    assert len(arxiv.requests) == 8


# -- issue 4, faults at the fetch level: "reported as a failed fetch, never as 'no papers'" -------------


def test_malformed_200_body_is_retried_then_a_failed_run(fresh_core, fixed_now, arxiv):
    arxiv.handler = lambda q: ok(real("arxiv_web_2026_rate_exceeded_body.txt"))  # "Rate exceeded." with HTTP 200
    with _core_client(fresh_core, arxiv.url) as client:
        report = fetch_window(fresh_core, fixed_now, client=client)
    run = report.run
    assert run.outcome == "failed" and "malformed" in run.reason and (run.requests, run.retries) == (3, 2)
    assert last_runs(fresh_core, 1) == [run]


def test_empty_first_page_while_results_promised_is_a_failed_run(fresh_core, fixed_now, arxiv):
    arxiv.handler = lambda q: ok(build_feed([], 120))
    with _core_client(fresh_core, arxiv.url) as client:
        run = fetch_window(fresh_core, fixed_now, client=client).run
    assert run.outcome == "failed" and "empty page at start=0" in run.reason and run.papers == 0


def test_timeout_is_a_failed_run(fresh_core, fixed_now, arxiv):
    arxiv.handler = lambda q: "hang"
    with _core_client(fresh_core, arxiv.url, timeout=0.2, retries=1) as client:
        run = fetch_window(fresh_core, fixed_now, client=client).run
    assert run.outcome == "failed" and "did not answer in time" in run.reason and run.requests == 2


def test_cli_fetch_refused_connection_one_line_and_recorded(monkeypatch, tmp_path):
    config = tmp_path / "digestbot.toml"
    config.write_text("[arxiv]\ndelay_seconds = 0\nretries = 1\n")
    monkeypatch.setenv("DIGESTBOT_CONFIG", str(config))
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_URL", f"http://127.0.0.1:{_free_port()}/api/query")
    result = CliRunner().invoke(cli, ["fetch"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        result.stderr.startswith("Error: arXiv fetch failed: could not reach arXiv") and result.stderr.count("\n") == 1
    )
    status = CliRunner().invoke(cli, ["fetch", "--status"], catch_exceptions=False)
    assert "failed" in status.output and "could not reach arXiv" in status.output and "1 retries" in status.output


# -- issue 4, parsing: both formats, ids, categories, DOI/journal ref/comments, trimmed authors ---------

API_FILES = sorted(p.name for p in REALDATA.glob("arxiv_api_*.xml"))


@pytest.mark.parametrize("name", API_FILES)
def test_every_recorded_api_response_parses(name):
    page = parse_atom((REALDATA / name).read_bytes())
    assert bool(page.error) == ("error" in name)
    for p in page.papers:
        assert p.arxiv_id and not re.search(r"v\d+$", p.arxiv_id) and "/abs/" not in p.arxiv_id
        assert p.title and p.abstract == " ".join(p.abstract.split())
        assert p.authors and all(a == " ".join(a.split()) for a in p.authors)
        assert p.primary_category in p.categories and len(set(p.categories)) == len(p.categories)
        assert p.published and p.published <= (p.updated or p.published)


def test_legacy_crosslist_keeps_comment_journal_ref_and_doi():
    p = parse_atom((REALDATA / "arxiv_api_2016_legacy_idlist_1111.2011v2_v2_doi_journalref_crosslist.xml").read_bytes())
    paper = p.papers[0]
    assert paper.comment and paper.journal_ref and paper.doi == "10.1103/PhysRevB.85.115117"
    assert "\n" not in paper.comment


def test_latest_legacy_sample_2025_10():
    page = parse_atom((REALDATA / "arxiv_api_2025-10_legacy_search_cat-cs.RO_AND_neural_2of5619.xml").read_bytes())
    assert page.total == 5619 and len(page.papers) == 2
    assert all(p.primary_category == "cs.RO" and p.version for p in page.papers)


# -- issue 4, client: "Query the union of the themes' categories", User-Agent with contact -------------


def test_window_query_is_the_union_of_every_themes_categories(monkeypatch, tmp_path, arxiv):
    config = tmp_path / "digestbot.toml"
    config.write_text(
        '[arxiv]\ndelay_seconds = 0\ncontact = "me@lab.example"\n\n'
        '[[themes]]\nname = "robot-learning"\nlabel = "Robot learning"\n'
        'description = "Robots that learn from demonstrations."\nkeywords = ["robot policy"]\n'
        'categories = ["cs.RO"]\n'
    )
    monkeypatch.setenv("DIGESTBOT_CONFIG", str(config))
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_URL", arxiv.url)
    arxiv.handler = lambda q: ok(real("arxiv_api_2025-10_legacy_search_cat-cs.RO_AND_neural_2of5619.xml"))
    result = CliRunner().invoke(cli, ["fetch", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    query = arxiv.requests[0]["params"]["search_query"][0]
    cats = re.findall(r"cat:(\S+?)[ )]", query)
    themes = json.loads(CliRunner().invoke(cli, ["themes", "--json"], catch_exceptions=False).stdout)
    assert set(cats) == {c for t in themes for c in t["categories"]} and "cs.RO" in cats
    assert "mailto:me@lab.example" in arxiv.requests[0]["headers"]["User-Agent"]


# -- issue 4, CLI: `fetch --json` fields exactly; progress bar only on a terminal -----------------------

FETCH_FIELDS = {
    "arxiv_id",
    "version",
    "title",
    "authors",
    "categories",
    "primary_category",
    "published",
    "updated",
    "scores",
    "matched",
    "why",
}


def test_fetch_json_objects_have_exactly_the_issue_fields(monkeypatch, tmp_path, arxiv):
    config = tmp_path / "digestbot.toml"
    config.write_text("[arxiv]\ndelay_seconds = 0\n")
    monkeypatch.setenv("DIGESTBOT_CONFIG", str(config))
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_URL", arxiv.url)
    arxiv.handler = lambda q: ok(real("arxiv_api_2016_legacy_idlist_1111.2011v2_v2_doi_journalref_crosslist.xml"))
    data = json.loads(CliRunner().invoke(cli, ["fetch", "--json"], catch_exceptions=False).stdout)
    (obj,) = data
    assert set(obj) == FETCH_FIELDS
    assert (obj["arxiv_id"], obj["version"]) == ("1111.2011", 2)
    assert (
        obj["categories"] == ["cond-mat.str-el", "cond-mat.stat-mech"] and obj["primary_category"] == "cond-mat.str-el"
    )
    assert obj["published"] < obj["updated"] and all(isinstance(v, float) for v in obj["scores"].values())


def _run_digestbot(args: list[str], env: dict[str, str], tty: bool) -> tuple[int, bytes, bytes]:
    """Run the real entry point; stderr is a pseudo-terminal when `tty`, else a pipe."""
    command = [sys.executable, "-m", "bot.cli_main", *args]
    if not tty:
        done = subprocess.run(command, env=env, capture_output=True, timeout=120, cwd=PROJECT, check=False)
        return done.returncode, done.stdout, done.stderr
    import pty
    import select
    import tempfile

    leader, follower = pty.openpty()
    with tempfile.TemporaryFile() as out_file:
        proc = subprocess.Popen(command, env=env, stdout=out_file, stderr=follower, cwd=PROJECT)
        os.close(follower)
        err = bytearray()
        while True:
            ready, _, _ = select.select([leader], [], [], 120)
            if not ready:  # never hang the suite on a stuck child
                proc.kill()
                break
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            err += chunk
        os.close(leader)
        code = proc.wait(timeout=120)
        out_file.seek(0)
        return code, out_file.read(), bytes(err)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_bar_on_a_terminal_and_quiet_without_one(arxiv, tmp_path, env_setup):
    arxiv.handler = lambda q: ok(build_feed(unique_entries(int(q["start"][0]), 10), 30, int(q["start"][0])))
    config = tmp_path / "digestbot.toml"
    config.write_text("[arxiv]\ndelay_seconds = 0\npage_size = 10\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_"))}
    env.update(
        DIGESTBOT_CONFIG=str(config),
        DIGESTBOT_ARXIV_API_URL=arxiv.url,
        DIGESTBOT_HOME=str(env_setup),
    )
    code, out, err = _run_digestbot(["fetch"], env, tty=True)
    assert code == 0, err
    assert b"Fetching arXiv [" in err and b"page 3, 30/30 papers" in err and b"30 papers stored" in out
    code, out, err = _run_digestbot(["fetch", "--days", "2"], env, tty=False)
    assert code == 0 and err == b"" and b"30 papers stored" in out


# -- issue 4: upsert by versionless id, revision history, no downgrade ---------------------------------


def test_newer_version_is_a_revision_and_an_older_one_changes_nothing(fresh_core, fixed_now, arxiv):
    from digests.catalog import get_by_arxiv_id, revisions_since

    entry = real_entries()[3]
    arxiv_id = re.search(rb"abs/(\S+?)v\d+</id>", entry).group(1).decode()
    versions = {n: re.sub(rb"v\d+</id>", f"v{n}</id>".encode(), entry) for n in (1, 2)}
    for n, days in ((1, 7), (2, 6), (1, 5)):  # v1, then v2, then a stale v1 again
        arxiv.replies.append(ok(build_feed([versions[n]], 1)))
        with _core_client(fresh_core, arxiv.url) as client:
            fetch_window(fresh_core, fixed_now, days=days, client=client)
    paper = get_by_arxiv_id(fresh_core, arxiv_id)
    assert paper.version == 2 and paper.origin == "arxiv"
    assert (paper.arxiv_id, 2) in {(p.arxiv_id, v) for p, v in revisions_since(fresh_core, "2026-01-01")}
    assert len([p for p in fresh_core.db["papers"].rows_where("arxiv_id = ?", [arxiv_id])]) == 1


# -- issue 3 + 4: enrichment fills the real title of an untitled seed; the rest is logged ---------------


def test_enrichment_fills_an_untitled_seed_and_papers_json_shows_it(fresh_core, arxiv, caplog):
    from xml.sax.saxutils import escape

    from digests.catalog import get_paper, seed_papers
    from digests.fetch import enrich_query, enrich_seeds

    untitled = next(p for p in seed_papers(fresh_core) if p.title is None)
    record = real("arxiv_api_2026_idlist_1706.03762_v7_multiversion.xml")
    record = re.sub(
        rb"<summary>.*?</summary>",
        f"<summary>{escape(untitled.abstract.rstrip('…'))} and the rest of it.</summary>".encode(),
        record,
        flags=re.DOTALL,
    )

    def handler(q):
        if q["search_query"][0] == enrich_query(untitled):
            return ok(record)
        return ok(real("arxiv_api_2026_search_zero_results.xml"))

    arxiv.handler = handler
    caplog.set_level("INFO", logger="digests.fetch")
    with _core_client(fresh_core, arxiv.url) as client:
        report = enrich_seeds(fresh_core, client)
    assert [p.id for p, _ in report.adopted] == [untitled.id]
    paper = get_paper(fresh_core, untitled.id)
    assert (paper.arxiv_id, paper.version, paper.title) == (
        "1706.03762",
        7,
        "Attention Is All You Need",
    )
    assert paper.authors[0] == "Ashish Vaswani" and not paper.display_title.startswith("[untitled]")
    logged = [r.getMessage() for r in caplog.records if r.name == "digests.fetch"]
    assert report.unmatched and len(logged) == len(report.unmatched)
    assert all(m.startswith("no confident arXiv match") for m in logged)
    data = json.loads(CliRunner().invoke(cli, ["papers", "--json"], catch_exceptions=False).stdout)
    obj = next(o for o in data if o["id"] == untitled.id)
    assert obj["arxiv_id"] == "1706.03762" and "1706.03762" in obj["url"] and obj["origin"] == "seed"
    assert obj["sources"] == [{"file": s.file, "line": s.line} for s in untitled.sources]
    found = json.loads(CliRunner().invoke(cli, ["paper", "1706.03762v7", "--json"], catch_exceptions=False).stdout)
    assert found[0]["id"] == untitled.id
    # the FTS index followed the adopted title and authors
    for query in ("attention is all you need", "Vaswani"):
        found = json.loads(CliRunner().invoke(cli, ["paper", query, "--json"], catch_exceptions=False).stdout)
        assert found[0]["id"] == untitled.id, query


# -- issue 3, CLI: papers/themes JSON, hostile lookups, import, --help examples ------------------------

PAPER_FIELDS = {
    "id",
    "title",
    "abstract",
    "authors",
    "arxiv_id",
    "url",
    "themes",
    "origin",
    "sources",
}


def test_papers_json_fields_and_sources_point_at_the_seed_lines(env_setup):
    data = json.loads(CliRunner().invoke(cli, ["papers", "--json"], catch_exceptions=False).stdout)
    assert len(data) == 36 and all(PAPER_FIELDS <= set(o) for o in data)
    seeds = PROJECT / "seeds"
    for obj in data:
        assert obj["origin"] == "seed" and obj["arxiv_id"] is None and obj["sources"]
        for src in obj["sources"]:
            assert set(src) == {"file", "line"} and isinstance(src["line"], int)
            assert (seeds / src["file"]).read_text(encoding="utf-8").splitlines()[src["line"] - 1].strip()
    themed = json.loads(CliRunner().invoke(cli, ["papers", "--theme", "rlhf", "--json"], catch_exceptions=False).stdout)
    assert themed and all("rlhf" in o["themes"] for o in themed) and len(themed) < len(data)


def test_themes_json_fields():
    data = json.loads(CliRunner().invoke(cli, ["themes", "--json"], catch_exceptions=False).stdout)
    assert len(data) >= 5
    for theme in data:
        assert {"name", "description", "keywords", "categories", "exemplars"} <= set(theme)
        assert theme["keywords"] and theme["categories"] and theme["exemplars"]


HOSTILE = [
    '"',
    "'",
    "AND",
    "OR",
    "NOT",
    "NEAR(",
    "NEAR(a b, 3)",
    "*",
    "-",
    "-reward",
    "a AND OR NOT",
    "(",
    ")",
    "title:foo",
    "^",
    "{}",
    "\\",
    "ünïcödé ß",
    "🤖🤖",
    "x" * 10_000,
    '"' * 10_000,
    "   ",
    "\x00",
]


@pytest.mark.parametrize("query", HOSTILE, ids=lambda q: repr(q[:12]))
def test_paper_hostile_text_gives_results_or_one_line(query):
    result = CliRunner().invoke(cli, ["paper", "--limit", "3", "--", query])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert result.output.strip()
    else:
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error:")


@pytest.mark.parametrize(
    "query, title",
    [
        (
            "Constitutional AI: Harmlessness from AI Feedback",
            "Constitutional AI: Harmlessness from AI Feedback",
        ),
        ("constitutional", "Constitutional AI: Harmlessness from AI Feedback"),
        (
            "recursively summarizing books",
            "Recursively Summarizing Books with Human Feedback",
        ),
        (
            "browser question answering",
            "WebGPT: Browser-assisted question-answering with human feedback",
        ),
    ],
)
def test_paper_exact_partial_title_and_free_words_rank_best_first(query, title):
    data = json.loads(CliRunner().invoke(cli, ["paper", query, "--json"], catch_exceptions=False).stdout)
    assert data[0]["title"] == title and data[0]["score"] >= max(o["score"] for o in data)


def test_catalog_import_is_all_or_nothing_with_the_line_number(tmp_path):
    path = tmp_path / "reading.jsonl"
    good = {"title": "Quokka alignment study", "authors": ["Ada Lovelace"]}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(good | {"title": "Second"}) + "\n{broken\n")
    result = CliRunner().invoke(cli, ["catalog", "import", str(path)])
    assert result.exit_code == 1 and "line 4" in result.stderr and result.stderr.count("\n") == 1
    assert "Quokka" not in CliRunner().invoke(cli, ["papers"], catch_exceptions=False).output
    path.write_text(json.dumps(good) + "\n")
    assert CliRunner().invoke(cli, ["catalog", "import", str(path)], catch_exceptions=False).exit_code == 0
    data = json.loads(CliRunner().invoke(cli, ["paper", "quokka alignment", "--json"], catch_exceptions=False).stdout)
    assert data[0]["title"] == "Quokka alignment study" and data[0]["sources"] == [{"file": "reading.jsonl", "line": 1}]


def _commands(group, path=()):
    import click

    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


@pytest.mark.parametrize("path", [p for p, _ in _commands(cli)], ids=" ".join)
def test_every_command_help_has_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0 and "Example" in result.output, result.output
