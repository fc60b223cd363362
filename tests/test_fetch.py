"""Fetch orchestration: run recording, window fetches end to end against a loopback arXiv, enrichment."""

from __future__ import annotations

from datetime import UTC

from digests.fetch import last_runs, record_run, runs_between
from digests.models import FetchRun


def _run(started: str, outcome: str = "ok", **kw) -> FetchRun:
    return FetchRun(
        id=None,
        started=started,
        finished=started,
        window_start="2026-11-18T12:00:00+00:00",
        window_end="2026-11-25T12:00:00+00:00",
        outcome=outcome,
        **kw,
    )


def test_record_run_round_trips_every_field(fresh_core):
    run = record_run(
        fresh_core,
        _run(
            "2026-11-25T12:00:00+00:00",
            "failed",
            reason="boom",
            queries=("q1",),
            requests=3,
            pages=2,
            retries=1,
            papers=7,
            scanned={"cs.CL": 5, "cs.LG": 2},
        ),
    )
    assert run.id is not None
    assert last_runs(fresh_core, 1) == [run]


def test_last_runs_newest_first_and_runs_between_inclusive(fresh_core):
    from datetime import datetime

    for day in ("2026-11-20", "2026-11-23", "2026-11-25", "2026-11-26"):
        record_run(fresh_core, _run(f"{day}T12:00:00+00:00"))
    assert [r.started[:10] for r in last_runs(fresh_core, 2)] == ["2026-11-26", "2026-11-25"]
    between = runs_between(fresh_core, "2026-11-20T12:00:00+00:00", datetime(2026, 11, 25, 12, tzinfo=UTC))
    assert [r.started[:10] for r in between] == ["2026-11-20", "2026-11-23", "2026-11-25"]


def test_runs_between_normalises_offsets(fresh_core):
    record_run(fresh_core, _run("2026-11-23T03:00:00+00:00"))  # 22:00 ET on Nov 22
    assert runs_between(fresh_core, "2026-11-22T21:00:00-05:00", "2026-11-22T23:00:00-05:00") != []
    assert runs_between(fresh_core, "2026-11-23T00:00:00-05:00", "2026-11-24T00:00:00-05:00") == []


# -- fetch_window end to end against the loopback arXiv ------------------------------------------

import json  # noqa: E402
import re  # noqa: E402

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from test_arxiv_api import FakeArxiv, FakeTime, build_feed, ok, real, real_entries, unique_entries  # noqa: E402

from bot.cli import cli  # noqa: E402
from digests.arxiv_api import ArxivClient  # noqa: E402
from digests.catalog import get_by_arxiv_id, seed_papers  # noqa: E402
from digests.fetch import enrich_queries, enrich_query, enrich_seeds, fetch_window, is_confident_match  # noqa: E402


@pytest.fixture
def arxiv():
    fake = FakeArxiv()
    yield fake
    fake.close()


@pytest.fixture
def client_for(arxiv):
    made = []

    def make(core, **kw):
        fake_time = FakeTime()
        settings = core.settings.__class__(**{**core.settings.__dict__, "arxiv_api_url": arxiv.url})
        options = {"sleep": fake_time.sleep, "monotonic": fake_time.monotonic, "retries": 2}
        options.update(kw)
        client = ArxivClient.from_settings(settings, db=core.db, now=core.clock, **options)
        made.append(client)
        return client

    yield make
    for c in made:
        c.close()


def test_fetch_window_ok_stores_and_records(fresh_core, fixed_now, arxiv, client_for):
    arxiv.replies.append(ok(build_feed(real_entries()[:40], 40)))
    report = fetch_window(fresh_core, fixed_now, days=7, client=client_for(fresh_core))
    run = report.run
    assert run.outcome == "ok" and run.reason is None and run.papers == 40
    assert (run.requests, run.pages, run.retries) == (1, 1, 0)
    assert run.window_start == "2026-11-19T00:00:00+00:00" and run.window_end == "2026-11-26T00:00:00+00:00"
    query = arxiv.requests[0]["params"]["search_query"][0]
    assert query == run.queries[0] and "cat:cs.CL" in query and "submittedDate:[202611190000 TO 202611260000]" in query
    assert sum(run.scanned.values()) == 40
    assert len(report.papers) == 40 and all(p.id for p in report.papers)
    assert get_by_arxiv_id(fresh_core, report.papers[0].arxiv_id) is not None
    assert set(report.scores) == {p.id for p in report.papers}
    assert all(len(scores) == len(fresh_core.themes) for scores in report.scores.values())


def test_fetch_window_failed_is_recorded_not_raised(fresh_core, fixed_now, arxiv, client_for):
    arxiv.replies.append((400, real("arxiv_api_2026_error_start_must_be_an_integer_http400.xml"), {}))
    report = fetch_window(fresh_core, fixed_now, client=client_for(fresh_core))
    assert report.run.outcome == "failed" and "start must be an integer" in report.run.reason
    assert "submittedDate" in report.run.reason
    assert last_runs(fresh_core, 1)[0] == report.run and report.papers == []


def test_fetch_window_empty_later_page_fails_but_keeps_what_came(fresh_core, fixed_now, arxiv, client_for):
    arxiv.replies.append(ok(build_feed(real_entries()[:10], 30)))
    arxiv.handler = lambda q: ok(build_feed([], 30, 10))
    report = fetch_window(fresh_core, fixed_now, client=client_for(fresh_core, page_size=10))
    assert report.run.outcome == "failed" and "empty page" in report.run.reason
    assert report.run.papers == 10 and len(report.papers) == 10 and report.run.retries == 2


def test_fetch_window_genuinely_empty(fresh_core, fixed_now, arxiv, client_for):
    arxiv.replies.append(ok(real("arxiv_api_2026_search_zero_results.xml")))
    report = fetch_window(fresh_core, fixed_now, client=client_for(fresh_core))
    assert report.run.outcome == "empty" and report.run.papers == 0 and "no papers" in report.run.reason


def test_second_fetch_same_day_is_served_from_cache(fresh_core, fixed_now, arxiv, client_for):
    arxiv.handler = lambda q: ok(build_feed(real_entries()[:5], 5))
    fetch_window(fresh_core, fixed_now, client=client_for(fresh_core))
    again = fetch_window(fresh_core, fixed_now, client=client_for(fresh_core))
    assert len(arxiv.requests) == 1 and again.run.requests == 0 and again.run.outcome == "ok"
    assert len(again.papers) == 5


def test_newer_version_updates_paper_and_revision_history(fresh_core, fixed_now, arxiv, client_for):
    entry = real_entries()[0]
    arxiv_id = re.search(rb"abs/(\S+?)v(\d+)</id>", entry).group(1).decode()
    v1 = re.sub(rb"v\d+</id>", b"v1</id>", entry)
    v2 = re.sub(rb"v\d+</id>", b"v2</id>", entry)
    arxiv.replies.extend([ok(build_feed([v1], 1)), ok(build_feed([v2], 1))])
    fetch_window(fresh_core, fixed_now, client=client_for(fresh_core))
    fetch_window(fresh_core, fixed_now, days=6, client=client_for(fresh_core))
    assert get_by_arxiv_id(fresh_core, arxiv_id).version == 2
    rows = list(fresh_core.db.query("SELECT version FROM paper_revisions WHERE arxiv_id = ?", [arxiv_id]))
    assert [r["version"] for r in rows] == [1, 2]


# -- enrichment ---------------------------------------------------------------------------------


def _with(entry: bytes, title: str | None = None, abstract: str | None = None) -> bytes:
    """A real entry whose title or summary is replaced (to stand in for the seed's arXiv record)."""
    from xml.sax.saxutils import escape

    if title is not None:
        entry = re.sub(rb"<title>.*?</title>", f"<title>{escape(title)}</title>".encode(), entry, flags=re.S)
    if abstract is not None:
        entry = re.sub(rb"<summary>.*?</summary>", f"<summary>{escape(abstract)}</summary>".encode(), entry, flags=re.S)
    return entry


def test_enrich_query_title_and_abstract_opening():
    from digests.models import Paper

    assert (
        enrich_query(Paper(title="Inverse Scaling: When Bigger Isn't Better"))
        == 'ti:"inverse scaling when bigger isn t better"'
    )
    q = enrich_query(
        Paper(
            title=None,
            abstract="Neural networks often pack many unrelated concepts into a single neuron - a puzzling "
            "phenomenon known as polysemanticity",
        )
    )
    assert q.startswith("abs:") and "abs:polysemanticity" in q


def test_confident_match_rules():
    from digests.models import Paper

    seed = Paper(
        title="Training Verifiers to Solve Math Word Problems", abstract="State-of-the-art language models can match"
    )
    assert is_confident_match(seed, Paper(title="Training verifiers to solve math word problems"))
    assert not is_confident_match(seed, Paper(title="Training Verifiers for Code"))
    untitled = Paper(title=None, abstract="Neural networks often pack many unrelated concepts into a single neuron")
    assert is_confident_match(
        untitled,
        Paper(
            title="Toy Models",
            abstract="Neural networks often pack many unrelated concepts into a single neuron, which",
        ),
    )
    assert not is_confident_match(untitled, Paper(title="Other", abstract="Graph neural networks for traffic"))


def test_enrich_seeds_adopts_confident_matches_only(fresh_core, arxiv, client_for):
    seeds = [p for p in seed_papers(fresh_core) if not p.arxiv_id]
    titled = next(p for p in seeds if p.title)
    decoy = next(p for p in seeds if p.title and p is not titled)
    untitled = next(p for p in seeds if not p.title)
    entries = real_entries()

    def handler(q):
        query = q["search_query"][0]
        if query == enrich_query(titled):
            return ok(build_feed([_with(entries[0], title=titled.title)], 1))
        if query == enrich_query(decoy):
            return ok(build_feed([entries[1]], 1))
        if query == enrich_query(untitled):
            return ok(build_feed([_with(entries[2], abstract=untitled.abstract.rstrip("…") + " and more.")], 1))
        return ok(real("arxiv_api_2026_search_zero_results.xml"))

    arxiv.handler = handler
    report = enrich_seeds(fresh_core, client_for(fresh_core))
    adopted = {p.id for p, _ in report.adopted}
    assert adopted == {titled.id, untitled.id}
    assert decoy.id in {p.id for p in report.unmatched} and report.failed == []
    # adopted seeds stop at their first query; the others also try the abstract-opening fallback
    assert len(arxiv.requests) == sum(1 if p.id in adopted else len(enrich_queries(p)) for p in seeds)
    assert all(r["params"]["sortBy"] == ["relevance"] for r in arxiv.requests)


# -- CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(arxiv, monkeypatch, tmp_path):
    cfg = tmp_path / "digestbot.toml"
    cfg.write_text('[arxiv]\ndelay_seconds = 0\nretries = 1\ncontact = "ops@example.org"\n')
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_URL", arxiv.url)
    monkeypatch.setenv("DIGESTBOT_CONFIG", str(cfg))
    return arxiv


def test_cli_fetch_json_prints_every_paper(cli_env):
    # the recorded cs.AI/cs.LG day: 50 real papers, some of them on the themes
    cli_env.handler = lambda q: ok(real("arxiv_api_2026_search_cat-cs.AI_OR_cat-cs.LG_max50.xml"))
    result = CliRunner().invoke(cli, ["fetch", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data) == 50
    keys = {
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
    assert all(keys <= set(obj) for obj in data)
    themes = {"rlhf", "oversight", "interpretability"}
    assert all(themes <= set(obj["scores"]) and set(obj["why"]) == set(obj["matched"]) for obj in data)
    assert any(obj["matched"] for obj in data) and all(obj["why"][t] for obj in data for t in obj["matched"])
    assert "ops@example.org" in cli_env.requests[0]["headers"]["User-Agent"]


def test_cli_fetch_failed_exits_nonzero_with_one_line(cli_env):
    cli_env.handler = lambda q: ok(build_feed([], 50))
    result = CliRunner().invoke(cli, ["fetch", "--json"], catch_exceptions=False)
    assert result.exit_code == 1
    assert json.loads(result.stdout) == []
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: arXiv fetch failed")
    status = CliRunner().invoke(cli, ["fetch", "--status", "--json"], catch_exceptions=False)
    runs = json.loads(status.stdout)
    assert runs[0]["outcome"] == "failed" and runs[0]["retries"] == 1


def test_cli_fetch_text_and_status(cli_env):
    cli_env.replies.append(ok(real("arxiv_api_2026_search_zero_results.xml")))
    result = CliRunner().invoke(cli, ["fetch", "--days", "3"], catch_exceptions=False)
    assert result.exit_code == 0 and "empty" in result.output and "0 papers stored" in result.output
    status = CliRunner().invoke(cli, ["fetch", "--status"], catch_exceptions=False)
    assert "empty" in status.output and "no papers" in status.output


def test_cli_status_shows_the_last_day_a_window_covered():
    from digests.fetch import record_run
    from digests.models import FetchRun
    from digests.service import open_core

    core = open_core(sync=False)
    record_run(core, FetchRun(id=None, started="2026-11-26T01:35:00+00:00", finished=None, outcome="ok",
                              window_start="2026-11-19T00:00:00+00:00", window_end="2026-11-26T00:00:00+00:00"))
    record_run(core, FetchRun(id=None, started="2026-11-25T13:00:00+00:00", finished=None, outcome="ok",
                              window_start="2026-11-18T13:00:00+00:00", window_end="2026-11-25T13:00:00+00:00"))
    lines = CliRunner().invoke(cli, ["fetch", "--status"], catch_exceptions=False).output.splitlines()
    assert "window 2026-11-19..2026-11-25 " in lines[0] and "2026-11-26" not in lines[0].split("ok", 1)[1]
    assert "window 2026-11-18..2026-11-25 " in lines[1]  # an end that is not a midnight is itself covered


def test_cli_status_with_no_runs():
    result = CliRunner().invoke(cli, ["fetch", "--status"], catch_exceptions=False)
    assert "No fetch has run yet" in result.output


def test_lookup_and_store_unknown_id(fresh_core, arxiv, client_for):
    from digests.fetch import lookup_and_store

    arxiv.replies.extend(
        [
            ok(real("arxiv_api_2026_idlist_1706.03762_v7_multiversion.xml")),
            ok(real("arxiv_api_2026_idlist_0000.0000_empty_result.xml")),
        ]
    )
    paper = lookup_and_store(fresh_core, "1706.03762", client=client_for(fresh_core))
    assert paper.id and paper.version == 7 and get_by_arxiv_id(fresh_core, "1706.03762").id == paper.id
    assert lookup_and_store(fresh_core, "0000.0000", client=client_for(fresh_core)) is None


def test_unexpected_failure_is_recorded_then_raised(fresh_core, fixed_now):
    import httpx

    def handler(request):
        raise RuntimeError("disk on fire")

    client = ArxivClient(
        "http://arxiv.invalid/api/query", user_agent="t", transport=httpx.MockTransport(handler), sleep=lambda s: None
    )
    with pytest.raises(RuntimeError):
        fetch_window(fresh_core, fixed_now, client=client)
    run = last_runs(fresh_core, 1)[0]
    assert run.outcome == "failed" and "disk on fire" in run.reason and run.finished


def test_cli_fetch_enrich_json(cli_env):
    cli_env.handler = lambda q: ok(real("arxiv_api_2026_search_zero_results.xml"))
    result = CliRunner().invoke(cli, ["fetch", "--enrich", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["adopted"] == [] and data["failed"] == [] and len(data["unmatched"]) == 36
    assert len(cli_env.requests) == sum(len(enrich_queries(p)) for p in data_seeds())


def test_fetch_window_reports_progress_per_page(fresh_core, fixed_now, arxiv, client_for):
    from test_arxiv_api import unique_entries

    arxiv.handler = lambda q: ok(build_feed(unique_entries(int(q["start"][0]), 10), 30, int(q["start"][0])))
    seen = []
    fetch_window(fresh_core, fixed_now, client=client_for(fresh_core, page_size=10), progress=lambda *a: seen.append(a))
    assert seen == [(1, 10, 30), (2, 20, 30), (3, 30, 30)]


def test_fetched_seed_paper_is_scored_but_keeps_its_seed_tags(fresh_core, fixed_now, arxiv, client_for):
    from digests.catalog import scores_for

    seed = next(p for p in seed_papers(fresh_core) if p.title and not p.arxiv_id)
    tags_before = scores_for(fresh_core, seed.id)
    entry = _with(real_entries()[0], title=seed.title)
    arxiv.replies.append(ok(build_feed([entry, real_entries()[1]], 2)))
    report = fetch_window(fresh_core, fixed_now, client=client_for(fresh_core))
    adopted = report.papers[0]
    assert adopted.id == seed.id and adopted.arxiv_id and len(report.scores[seed.id]) == len(fresh_core.themes)
    assert scores_for(fresh_core, seed.id) == tags_before


def test_a_scan_cut_short_is_recorded_as_partial_not_silently_ok(fresh_core, fixed_now, arxiv, client_for):
    # a server that ignores `start`: the same 100 papers of a claimed 214881 on every page
    arxiv.handler = lambda q: ok(real("arxiv_api_2026_search_all-testing_start0_max100.xml"))
    run = fetch_window(fresh_core, fixed_now, client=client_for(fresh_core, page_size=100)).run
    assert run.outcome == "ok" and run.papers == 100
    assert run.reason.startswith("partial: scanned 100 of the 214881 results arXiv reported")


def test_cli_status_shows_a_partial_run(cli_env):
    cli_env.handler = lambda q: ok(real("arxiv_api_2026_search_cat-cs.AI_OR_cat-cs.LG_max50.xml"))
    CliRunner().invoke(cli, ["fetch"], catch_exceptions=False)
    status = CliRunner().invoke(cli, ["fetch", "--status"], catch_exceptions=False).output
    assert "ok" in status and "partial: scanned 50 of the 386601 results" in status


def test_cache_keeps_only_the_current_announcement_day(fresh_core):
    from datetime import datetime

    from digests.arxiv_api import HttpCache

    cache = HttpCache(fresh_core.db)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    cache.put("http://a/q?window=1", "2026-11-24", 200, b"<feed/>", now)
    cache.put("http://a/q?window=2", "2026-11-25", 200, b"<feed/>", now)
    assert cache.get("http://a/q?window=1", "2026-11-24") is None
    assert [r["day"] for r in fresh_core.db.query("SELECT day FROM http_cache")] == ["2026-11-25"]


def data_seeds():
    """The seed papers as the CLI's catalog holds them (DIGESTBOT_HOME of the running test)."""
    from digests.service import open_core

    return seed_papers(open_core())


def test_enrich_falls_back_to_the_abstract_when_the_title_phrase_finds_nothing(fresh_core, arxiv, client_for):
    seeds = [p for p in seed_papers(fresh_core) if not p.arxiv_id]
    inverse = next(p for p in seeds if p.title and p.title.startswith("Inverse Scaling"))
    renamed = next(p for p in seeds if p.title == "Measuring Progress on Scalable Oversight for Large Language Models")
    blog_only = next(p for p in seeds if all(s.kind == "blog_index" for s in p.sources))
    assert enrich_queries(blog_only) == [enrich_query(blog_only)]  # a teaser is not an abstract to search by
    entries = real_entries()
    records = {
        # arXiv keeps "Isn't" whole, so the split phrase finds nothing; the abstract search finds the paper
        enrich_queries(inverse)[1]: _with(entries[0], title=inverse.title, abstract=inverse.abstract + " More."),
        # the same abstract under another title (a lab page renaming the paper) is still the same work
        enrich_queries(renamed)[1]: _with(entries[1], title="Scalable oversight, measured", abstract=renamed.abstract),
    }
    arxiv.handler = lambda q: ok(
        build_feed([records[q["search_query"][0]]], 1)
        if q["search_query"][0] in records
        else real("arxiv_api_2026_search_zero_results.xml")
    )
    report = enrich_seeds(fresh_core, client_for(fresh_core))
    adopted = {seed.id: record.title for seed, record in report.adopted}
    assert adopted == {inverse.id: inverse.title, renamed.id: "Scalable oversight, measured"}


def test_a_different_abstract_under_a_similar_title_is_not_adopted():
    from digests.models import Paper, SourceRef

    seed = Paper(
        title="Measuring Progress on Scalable Oversight",
        abstract="Developing safe and useful general-purpose AI systems will require us to make progress on oversight",
        sources=(SourceRef(file="000.txt", line=16, kind="research_page"),),
    )
    other = Paper(title="Scalable Oversight in Robotics", abstract="We control robot arms with reward shaping.")
    assert not is_confident_match(seed, other)


def test_a_blog_headline_alone_is_not_a_confident_match():
    from digests.models import Paper, SourceRef

    blog = (SourceRef(file="004.txt", line=24, kind="blog_index"),)
    seed = Paper(
        title="Techniques for Training Large Neural Networks",
        abstract="Large neural networks are at the core of many recent advances in AI, but training them is a "
        "difficult engineering and research challenge",
        sources=blog,
    )
    survey = Paper(title="Techniques for training large neural networks", abstract="We survey GPU kernels for CNNs.")
    assert not is_confident_match(seed, survey)
    announced = Paper(title=seed.title, abstract=seed.abstract + " which requires orchestrating a cluster of GPUs.")
    assert is_confident_match(seed, announced)
    listed = Paper(title=seed.title, abstract=seed.abstract, sources=(SourceRef(file="003.txt", line=1, kind="x"),))
    assert is_confident_match(listed, survey)  # a paper listing's title is the paper's own


# -- new versions of papers already sent ("v2 posted") -------------------------------------------------


def _posted_v1_then_fetch(fresh_core, fixed_now, arxiv, client_for, id_list_reply):
    """Store paper X (v1, first submitted months before the window), mark it sent, then fetch again."""
    from datetime import timedelta

    entries = real_entries()
    x = re.sub(rb"v\d+</id>", b"v1</id>", entries[5])
    x_id = re.search(rb"abs/(\S+?)v1</id>", x).group(1).decode()
    arxiv.replies.append(ok(build_feed([x], 1)))
    fetch_window(fresh_core, fixed_now - timedelta(days=7), client=client_for(fresh_core))
    fresh_core.db["sent_papers"].insert(
        {
            "channel": "slack:T1:C1",
            "arxiv_id": x_id,
            "version": 1,
            "digest_id": "d",
            "sent_at": "2026-11-18T14:00:00+00:00",
        }
    )
    window = unique_entries(0, 3)

    def handler(q):
        if "id_list" in q:
            return id_list_reply(q, re.sub(rb"v\d+</id>", b"v2</id>", entries[5]))
        return ok(build_feed(window, 3))

    arxiv.handler = handler
    return x_id, fetch_window(fresh_core, fixed_now, client=client_for(fresh_core))


def test_a_posted_paper_from_before_the_window_gets_its_new_version(fresh_core, fixed_now, arxiv, client_for):
    from digests.catalog import revisions_since

    x_id, report = _posted_v1_then_fetch(
        fresh_core, fixed_now, arxiv, client_for, lambda q, v2: ok(build_feed([v2, real_entries()[9]], 2))
    )
    run = report.run
    assert run.outcome == "ok" and run.reason is None and run.papers == 3
    assert run.queries[1] == f"id_list={x_id}" and (run.requests, run.pages) == (2, 2)
    assert arxiv.requests[-1]["params"]["id_list"] == [x_id]
    assert get_by_arxiv_id(fresh_core, x_id).version == 2
    assert [(p.arxiv_id, v) for p, v in revisions_since(fresh_core, "2026-11-25")] == [(x_id, 2)]
    unasked = re.search(rb"abs/(\S+?)v\d+</id>", real_entries()[9]).group(1).decode()
    assert get_by_arxiv_id(fresh_core, unasked) is None  # only the ids asked for are stored


def test_a_failed_version_check_is_noted_but_the_window_still_counts(fresh_core, fixed_now, arxiv, client_for):
    x_id, report = _posted_v1_then_fetch(
        fresh_core,
        fixed_now,
        arxiv,
        client_for,
        lambda q, v2: (400, real("arxiv_api_2026_error_incorrect_id_format_http400.xml"), {}),
    )
    run = report.run
    assert run.outcome == "ok" and run.papers == 3 and len(report.papers) == 3
    assert run.reason.startswith("could not check 1 posted papers for new versions")
    assert get_by_arxiv_id(fresh_core, x_id).version == 1
