"""The catalog on a real SQLite file: upserts, revisions, import, lookup and hostile queries."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from bot.cli import cli
from digests import catalog, importer, lookup
from digests.errors import ImportLineError
from digests.migrations import migrations
from digests.models import Paper, ThemeScore
from digests.store import open_db

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def arxiv_paper(arxiv_id: str, title: str, version: int = 1, abstract: str = "", **kw) -> Paper:
    return Paper(title=title, abstract=abstract, arxiv_id=arxiv_id, version=version, origin="arxiv", **kw)


@pytest.fixture
def core(fresh_core):
    catalog.upsert_arxiv_papers(
        fresh_core,
        [
            arxiv_paper("2305.18290", "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
                        abstract="We fit a policy to preferences without a reward model.", authors=("Rafael Rafailov",)),
            arxiv_paper("2305.20050", "Let's Verify Step by Step",
                        abstract="Process supervision of each reasoning step beats outcome supervision.",
                        authors=("Hunter Lightman", "Vineet Kosaraju")),
            arxiv_paper("hep-th/9711200", "The Large N Limit of Superconformal Field Theories and Supergravity",
                        authors=("Juan M. Maldacena",)),
        ],
        NOW,
    )
    return fresh_core


def test_migrations_apply_to_database_made_by_older_schema(tmp_path):
    path = tmp_path / "old.db"
    from sqlite_utils import Database

    db = Database(path)
    migrations.apply(db, stop_before="m002_catalog_meta_and_title_index")
    db.execute("INSERT INTO papers (title, origin, created_at, modified_at) VALUES ('Old', 'seed', 'x', 'x')")
    db.conn.commit()
    db.close()
    db = open_db(path)
    assert "meta" in db.table_names()
    assert "m002_catalog_meta_and_title_index" in [m.name for m in migrations.applied(db)]
    assert db.execute("SELECT title FROM papers").fetchone()[0] == "Old"


def test_upsert_new_then_newer_version_is_a_revision(core):
    result = catalog.upsert_arxiv_papers(
        core, [arxiv_paper("2305.18290", "Direct Preference Optimization", version=2)], NOW
    )
    assert [p.arxiv_id for p in result.revised] == ["2305.18290"]
    again = catalog.upsert_arxiv_papers(core, [arxiv_paper("2305.18290", "DPO", version=2)], NOW)
    assert again.unchanged and not again.revised and not again.new
    paper = catalog.get_by_arxiv_id(core, "2305.18290v1")
    assert paper.version == 2 and paper.announced == "2026-11-25"
    assert [(p.arxiv_id, v) for p, v in catalog.revisions_since(core, "2026-11-01")] == [("2305.18290", 2)]


def test_fetched_paper_with_a_seed_title_is_adopted_not_duplicated(core):
    importer.import_papers(core, [Paper(title="Weak-to-Strong Generalization", origin="seed")])
    before = catalog.count_papers(core)
    catalog.upsert_arxiv_papers(core, [arxiv_paper("2312.09390", "Weak-to-strong generalization", version=1)], NOW)
    assert catalog.count_papers(core) == before
    adopted = catalog.get_by_arxiv_id(core, "2312.09390")
    assert adopted.origin == "seed"


@pytest.mark.parametrize(
    "query",
    ["2305.18290", "2305.18290v2", "arXiv:2305.18290", "https://arxiv.org/abs/2305.18290v1",
     "http://arxiv.org/pdf/2305.18290v3.pdf", "arxiv.org/pdf/2305.18290"],
)
def test_search_by_id_and_url(core, query):
    results = lookup.search(core, query)
    assert [p.arxiv_id for p, _ in results] == ["2305.18290"]


def test_search_old_style_id(core):
    assert lookup.search(core, "hep-th/9711200v3")[0][0].arxiv_id == "hep-th/9711200"


def test_search_ranks_title_matches_first(core):
    results = lookup.search(core, "direct preference")
    assert results[0][0].arxiv_id == "2305.18290"
    exact = lookup.search(core, "Let's verify step by step")
    assert exact[0][0].arxiv_id == "2305.20050" and exact[0][1] > 50
    partial = lookup.search(core, "verify step")
    assert partial[0][0].arxiv_id == "2305.20050"
    assert lookup.search(core, "lightman")[0][0].arxiv_id == "2305.20050"


HOSTILE = [
    '"', '""', "'", "AND", "OR", "NOT", "NEAR(", "NEAR(a b)", "*", "-", "a*", "-harmless", "title:foo",
    "(", ")", "{title}: x", "^", "direct AND", "OR OR OR", '"unbalanced', "💥🔥", "日本語の論文",
    "Ünïcödé façade", "<!channel>", "@everyone", "<@U123>", "\x00", "x" * 10_000, "ai " * 5_000, "   ",
    "'; DROP TABLE papers; --", "%", "_",
]


@pytest.mark.parametrize("query", HOSTILE, ids=lambda q: repr(q[:20]))
def test_search_hostile_queries_never_raise(core, query):
    before = catalog.count_papers(core)
    results = lookup.search(core, query)
    assert isinstance(results, list)
    assert catalog.count_papers(core) == before


def test_query_terms_strip_syntax():
    assert lookup.query_terms('NEAR("a" b*) -c AND d') == ["near", "a", "b", "c", "and", "d"]
    assert len(lookup.query_terms("word " * 1000)) == 1


def test_scores_and_matched_papers(core):
    paper = catalog.get_by_arxiv_id(core, "2305.18290")
    catalog.store_scores(
        core, paper.id, [ThemeScore("oversight", 0.9, True, why=("Measuring Progress",), terms=("oversight",)),
                         ThemeScore("rlhf", 0.2, False)]
    )
    assert catalog.get_paper(core, paper.id).themes == ("oversight",)
    found = catalog.matched_papers(core, ["oversight", "rlhf"], "2026-11-20", "2026-11-26")
    assert [(p.arxiv_id, [s.theme for s in s_]) for p, s_ in found] == [("2305.18290", ["oversight"])]
    assert catalog.matched_papers(core, ["oversight"], "2026-11-26", "2026-12-01") == []
    assert "2305.18290" in [p.arxiv_id for p in catalog.list_papers(core, theme="oversight")]
    assert all("oversight" in p.themes for p in catalog.list_papers(core, theme="oversight"))


def test_catalog_version_changes_on_write(core):
    before = catalog.catalog_version(core)
    catalog.upsert_arxiv_papers(core, [arxiv_paper("2401.00001", "Something new")], NOW)
    assert catalog.catalog_version(core) > before


def test_import_rejects_bad_line_and_imports_nothing(tmp_path, core):
    path = tmp_path / "list.jsonl"
    path.write_text(json.dumps({"title": "Zyxwv quokka study"}) + "\n" + json.dumps({"abstract": "no title"}) + "\n")
    with pytest.raises(ImportLineError) as info:
        importer.read_import_file(path)
    assert info.value.line == 2
    result = CliRunner().invoke(cli, ["catalog", "import", str(path)])
    assert result.exit_code == 1
    assert "line 2" in result.output and "Traceback" not in result.output
    assert lookup.search(core, "zyxwv") == []


def test_import_merges_known_papers_and_keeps_sources(tmp_path, core):
    path = tmp_path / "list.jsonl"
    lines = [
        {"title": "A reading list paper", "authors": ["Ada Lovelace"], "abstract": "About engines."},
        {"title": "Direct preference optimization: your language model is secretly a reward model"},
        {"title": "Another", "arxiv_id": "2305.20050v3"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["catalog", "import", str(path), "--json"], catch_exceptions=False)
    assert json.loads(result.output) == {"inserted": 1, "merged": 2}
    merged = catalog.get_by_arxiv_id(core, "2305.20050")
    assert ("list.jsonl", 3) in [(s.file, s.line) for s in merged.sources]
    found = lookup.search(core, "reading list")[0][0]
    assert found.origin == "seed" and found.sources[0].line == 1


def test_paper_cli_json_has_score_and_fields(core):
    result = CliRunner().invoke(cli, ["paper", "direct preference", "--json"], catch_exceptions=False)
    data = json.loads(result.output)
    assert data[0]["arxiv_id"] == "2305.18290"
    assert {"id", "title", "abstract", "authors", "arxiv_id", "url", "themes", "origin", "sources", "score"} <= set(
        data[0]
    )


@pytest.mark.parametrize("query", ['"', "NEAR(", "*", "x" * 10_000, "💥"])
def test_paper_cli_hostile_gives_one_line(core, query):
    result = CliRunner().invoke(cli, ["paper", query])
    assert result.exit_code == 0
    assert "Traceback" not in result.output


def test_db_path_under_home(env_setup):
    result = CliRunner().invoke(cli, ["db", "path"], catch_exceptions=False)
    assert result.output.strip() == str(env_setup / "digestbot.db")


def test_seed_sync_is_idempotent_and_follows_edits(tmp_path, monkeypatch):
    import shutil

    from digests.service import open_core
    from digests.settings import PROJECT_ROOT, load_settings

    seeds = tmp_path / "seeds"
    shutil.copytree(PROJECT_ROOT / "seeds", seeds)
    config = tmp_path / "digestbot.toml"
    config.write_text(f'[paths]\nseeds = "{seeds}"\n')
    monkeypatch.setenv("DIGESTBOT_CONFIG", str(config))
    core = open_core(load_settings())
    first = {(p.id, p.display_title, len(p.sources)) for p in catalog.list_papers(core)}
    assert len(first) == 36
    assert catalog.sync_seeds(core) is False
    version = catalog.catalog_version(core)
    core = open_core(load_settings())
    assert {(p.id, p.display_title, len(p.sources)) for p in catalog.list_papers(core)} == first
    assert catalog.catalog_version(core) == version
    page = next(seeds.glob("000_*.txt"))
    page.write_text(page.read_text().replace("GAIA: a benchmark for General AI Assistants", "GAIA: a benchmark"))
    assert catalog.sync_seeds(core) is True
    titles = {p.display_title for p in catalog.list_papers(core)}
    assert "GAIA: a benchmark" in titles and "GAIA: a benchmark for General AI Assistants" not in titles
    assert len(titles) == 36


def test_title_prefix_ids_completes_the_last_word_safely(core):
    ids = lookup.title_prefix_ids(core, "let's verify st")
    assert [catalog.get_paper(core, i).arxiv_id for i in ids] == ["2305.20050"]
    assert lookup.title_prefix_ids(core, "v") == []
    for hostile in ['"', "NEAR(", "*", "-x", "x" * 10_000, "💥"]:
        assert isinstance(lookup.title_prefix_ids(core, hostile), list)


def test_catalog_writes_keep_shared_process_objects(core):
    marker = object()
    core.cache["catalog_lane"] = marker
    catalog.upsert_arxiv_papers(core, [arxiv_paper("2401.00002", "Another new paper")], NOW)
    assert core.cache["catalog_lane"] is marker


@pytest.mark.parametrize("typed", ["constitu", "constituti", "constitutio", "constitutional", "constitutional a"])
def test_title_prefix_ids_answers_letter_by_letter(fresh_core, typed):
    titles = [catalog.get_paper(fresh_core, i).title for i in lookup.title_prefix_ids(fresh_core, typed)]
    assert "Constitutional AI: Harmlessness from AI Feedback" in titles


def test_import_keeps_given_themes_and_tags_the_rest(tmp_path, core):
    path = tmp_path / "list.jsonl"
    lines = [
        {"title": "Zebra crossings for robots", "themes": ["evaluations"]},
        {"title": "Scalable oversight with debate between language models",
         "abstract": "We study debate as a scalable oversight method where AI critiques help humans supervise "
                     "stronger language models on tasks they cannot evaluate directly."},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["catalog", "import", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    by_title = {p.title: p for p in catalog.list_papers(core)}
    assert by_title["Zebra crossings for robots"].themes == ("evaluations",)
    assert "oversight" in by_title["Scalable oversight with debate between language models"].themes
    assert [p for p in catalog.list_papers(core, theme="oversight") if (p.title or "").startswith("Scalable o")]


def test_import_rejects_unknown_theme_with_its_line(tmp_path, core):
    path = tmp_path / "list.jsonl"
    path.write_text(json.dumps({"title": "A"}) + "\n" + json.dumps({"title": "B", "themes": ["nope"]}) + "\n")
    result = CliRunner().invoke(cli, ["catalog", "import", str(path)])
    assert result.exit_code == 1 and "line 2" in result.output and "nope" in result.output
    assert lookup.search(core, "B") == [] or all(p.title != "B" for p, _ in lookup.search(core, "B"))


def test_paper_query_starting_with_a_dash_is_text(core):
    result = CliRunner().invoke(cli, ["paper", "-reward", "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    assert isinstance(json.loads(result.output), list)


def test_enrichment_folds_an_already_fetched_copy_into_the_seed_paper(core):
    importer.import_papers(core, [Paper(title="Zeta seed paper on debate", origin="seed")], tag=False)
    seed = lookup.search(core, "Zeta seed paper on debate")[0][0]
    catalog.upsert_arxiv_papers(core, [arxiv_paper("2405.00001", "AI debate helps weak judges")], NOW)
    before = catalog.count_papers(core)
    adopted = catalog.adopt_arxiv_record(core, seed.id, arxiv_paper("2405.00001", "AI debate helps weak judges"))
    assert adopted.id == seed.id and adopted.arxiv_id == "2405.00001" and adopted.origin == "seed"
    assert catalog.count_papers(core) == before - 1
    assert catalog.get_by_arxiv_id(core, "2405.00001").id == seed.id


def test_a_blog_headline_is_not_adopted_by_an_unrelated_arxiv_paper(core):
    unrelated = arxiv_paper("2409.00001", "Techniques for Training Large Neural Networks",
                            abstract="We benchmark optimizers for protein folding on a single GPU.")
    result = catalog.upsert_arxiv_papers(core, [unrelated], NOW)
    assert [p.arxiv_id for p in result.new] == ["2409.00001"]
    blog = [p for p in catalog.seed_papers(core) if p.title == "Techniques for Training Large Neural Networks"]
    assert blog and blog[0].arxiv_id is None
