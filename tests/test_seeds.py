"""Seed catalog: each format parsed from its real file, the hand-labelled merge mapping, keys and errors."""

from __future__ import annotations

import itertools
import pickle
import random
import shutil
from pathlib import Path

import pytest

from digests.errors import CatalogError
from digests.seeds import (
    ARXIV_LISTING,
    BLOG_INDEX,
    PAPER_INDEX,
    RESEARCH_PAGE,
    SeedEntry,
    SeedFormatError,
    detect_format,
    merge_entries,
    parse_seed_file,
    parse_seeds,
    seed_files,
    seed_key,
)

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
RESEARCH = "000_dc64dd94d54456ad.txt"
LISTING = "002_d9a2bf206fcf2919.txt"
INDEX = "003_73f6f79ccc154297.txt"
BLOG = "004_66637d14103855ee.txt"
SHORT = {"000": RESEARCH, "002": LISTING, "003": INDEX, "004": BLOG}

# Hand-labelled: every seed entry (file prefix:line where it starts) -> the work it lists.
# Read from the files by a person, not produced by the code under test.
EXPECTED_CLUSTERS: dict[str, list[str]] = {
    "Scaling Instruction Finetuned Language Models (Flan)": ["000:4"],
    "Inverse Scaling": ["000:7"],
    "GSM8K / Training Verifiers": ["000:10", "004:40"],
    "PALMS": ["000:13"],
    "Measuring Progress on Scalable Oversight": ["000:16", "002:5"],
    "Relational Abstractions": ["000:19"],
    "Model-Written Evaluations": ["000:22", "002:3"],
    "DOC long story coherence": ["000:25"],
    "Constitutional AI": ["000:28", "002:4"],
    "WebGPT": ["000:31", "003:19", "004:36"],
    "GAIA": ["000:34"],
    "Text with Citations (ALCE)": ["000:37"],
    "Moral self-correction": ["002:2"],
    "Induction heads": ["002:6"],
    "Toy models of superposition": ["002:7"],
    "Red teaming language models": ["002:8"],
    "Language models (mostly) know what they know": ["002:9"],
    "Scaling laws for repeated data": ["002:10"],
    "HH-RLHF helpful and harmless assistant": ["002:11"],
    "Predictability and Surprise": ["002:12"],
    "Learning to summarize from human feedback": ["002:13", "003:25"],
    "Deep RL from human preferences": ["002:14"],
    "Clio / economic tasks": ["002:15"],
    "GPT-4 Technical Report": ["003:1"],
    "InstructGPT": ["003:4", "004:32"],
    "Self-critiquing models": ["003:7", "004:20"],
    "Weak-to-Strong Generalization": ["003:10"],
    "Open Problems in Mechanistic Interpretability": ["003:13"],
    "AIR data selection": ["003:16"],
    "Recursively Summarizing Books": ["003:22"],
    "Release Strategies": ["003:28"],
    "Our approach to alignment research (blog post)": ["004:4"],
    "DALL-E 2 Pre-Training Mitigations": ["004:12"],
    "VPT Minecraft": ["004:16"],
    "Techniques for Training Large Neural Networks": ["004:24"],
    "Formal Math Olympiad": ["004:28"],
}


def _ref(short: str) -> tuple[str, int]:
    prefix, line = short.split(":")
    return SHORT[prefix], int(line)


def _where(entry: object) -> tuple[str, int]:
    return entry.file, entry.line  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def papers():
    return parse_seeds(SEEDS)


def _paper_at(papers, short: str):
    ref = _ref(short)
    (paper,) = [p for p in papers if ref in {_where(s) for s in p.sources}]
    return paper


def _raw_line(file: str, line: int) -> str:
    return (SEEDS / file).read_text(encoding="utf-8").splitlines()[line - 1]


# --- every file ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", seed_files(SEEDS), ids=lambda p: p.name)
def test_every_seed_file_parses_to_entries_on_real_lines(path: Path):
    entries = parse_seed_file(path)
    assert entries
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len({e.kind for e in entries}) == 1
    for entry in entries:
        assert entry.file == path.name
        start = lines[entry.line - 1]
        assert start.strip()
        title_line = lines[entry.line] if entry.kind == PAPER_INDEX else start  # after the date line
        assert entry.title is None or title_line.startswith(entry.title)
        assert entry.text and entry.text in lines
        assert entry.title not in {"Research", "Introduction", "Our", "Read on Arxiv"}


def test_seed_files_skip_the_readme():
    names = [p.name for p in seed_files(SEEDS)]
    assert names == [RESEARCH, LISTING, INDEX, BLOG]
    assert (SEEDS / "README.md").exists()


# --- one test per format ---------------------------------------------------------------------------------


def test_research_page():
    entries = parse_seed_file(SEEDS / RESEARCH)
    assert [e.line for e in entries] == list(range(4, 38, 3))
    assert {e.kind for e in entries} == {RESEARCH_PAGE}
    assert entries[0].title == "Scaling Instruction Finetuned Language Models"
    assert entries[-1].title == "Enabling Large Language Models to Generate Text with Citations"
    assert entries[2].text.startswith("State-of-the-art language models can match human performance")
    texts = " ".join(e.text for e in entries)
    assert "We study the frontier" not in texts and "Read about our collaborations" not in texts
    assert not any(e.truncated for e in entries)


def test_arxiv_listing():
    entries = parse_seed_file(SEEDS / LISTING)
    assert [e.line for e in entries] == list(range(2, 16))
    assert {e.kind for e in entries} == {ARXIV_LISTING}
    assert all(e.title is None and e.truncated for e in entries)
    assert all(e.text.endswith("...") and not e.clean_text.endswith("...") for e in entries)
    assert not any("papers on arXiv" in e.text for e in entries)
    # An inner " ... " is part of the abstract, not a truncation mark.
    assert "[A][B] ... [A] -> [B]" in entries[4].clean_text


def test_paper_index_unglues_dates_titles_and_authors():
    entries = parse_seed_file(SEEDS / INDEX)
    assert [e.line for e in entries] == list(range(1, 29, 3))
    assert {e.kind for e in entries} == {PAPER_INDEX}
    gpt4 = entries[0]
    assert gpt4.title == "GPT-4 Technical Report"
    assert gpt4.authors == ("Josh Achiam", "Steven Adler", "Sandhini Agarwal")
    assert gpt4.affiliations == ("berkeley", "deepmind")
    assert gpt4.categories == ("cs.CL",) and gpt4.published == "2023-03-15"
    assert gpt4.text.startswith("We report the development of GPT-4")
    by_title = {e.title: e for e in entries}
    mech = by_title["Open Problems in Mechanistic Interpretability"]
    assert mech.categories == ("cs.LG",) and mech.published == "2025-01-27"
    assert mech.affiliations == ("deepmind",)
    w2s = by_title["Weak-to-Strong Generalization: Eliciting Strong Capabilities With Weak Supervision"]
    assert w2s.authors == ("Collin Burns", "Pavel Izmailov", "Jan Hendrik Kirchner")
    assert by_title["Recursively Summarizing Books with Human Feedback"].authors[-1] == "Daniel M. Ziegler"
    # "WebGPT" has its own lower-to-upper join inside the title; the split must not fall there.
    webgpt = by_title["WebGPT: Browser-assisted question-answering with human feedback"]
    assert webgpt.authors[0] == "Reiichiro Nakano" and webgpt.affiliations == ()
    assert by_title["Release Strategies and the Social Impacts of Language Models"].published == "2019-08-24"


def test_blog_index_keeps_posts_and_drops_chrome():
    entries = parse_seed_file(SEEDS / BLOG)
    assert [e.line for e in entries] == [4, 12, 16, 20, 24, 28, 32, 36, 40]
    assert {e.kind for e in entries} == {BLOG_INDEX}
    assert entries[0].title == "Our approach to alignment research"
    assert entries[0].text.startswith("Our approach to aligning AGI is empirical and iterative.")
    assert entries[3].title == "AI-Written Critiques Help Humans Notice Flaws"
    assert entries[3].text == "Showing model-generated critical comments to humans helps them find flaws in summaries."
    assert not entries[3].truncated and entries[1].truncated  # the DALL-E teaser stops mid-sentence


def test_format_is_detected_from_content_not_name(tmp_path: Path):
    for name, kind in [(RESEARCH, RESEARCH_PAGE), (LISTING, ARXIV_LISTING), (INDEX, PAPER_INDEX), (BLOG, BLOG_INDEX)]:
        copy = tmp_path / f"zz_{kind}_renamed.txt"
        shutil.copyfile(SEEDS / name, copy)
        assert {e.kind for e in parse_seed_file(copy)} == {kind}


# --- merging ---------------------------------------------------------------------------------------------


def test_clusters_match_the_hand_labelled_mapping(papers):
    expected = {frozenset(_ref(s) for s in refs) for refs in EXPECTED_CLUSTERS.values()}
    actual = {frozenset(_where(s) for s in p.sources) for p in papers}
    assert actual == expected
    assert len(papers) == len(EXPECTED_CLUSTERS) == 36
    assert sum(len(p.sources) for p in papers) == 45


@pytest.mark.parametrize(
    "subset",
    [c for k in (1, 2, 3) for c in itertools.combinations(sorted(SHORT.values()), k)],
    ids=lambda c: "+".join(name[:3] for name in c),
)
def test_any_subset_of_the_seeds_gives_the_mapping_restricted_to_it(subset):
    # The blog matcher's IDF weights change with the collection; the clusters must not.
    entries = [e for name in subset for e in parse_seed_file(SEEDS / name)]
    expected = {frozenset(r for r in map(_ref, refs) if r[0] in subset) for refs in EXPECTED_CLUSTERS.values()}
    actual = {frozenset(_where(s) for s in p.sources) for p in merge_entries(entries)}
    assert actual == expected - {frozenset()}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("004:28", "000:10"),  # formal math olympiad post vs GSM8K
        ("004:28", "004:40"),
        ("003:22", "003:25"),  # recursively summarizing books vs learning to summarize
        ("003:22", "002:13"),
        ("004:12", "002:12"),  # DALL-E 2 pre-training mitigations vs predictability and surprise
        ("004:4", "003:7"),  # our approach to alignment research vs self-critiquing
        ("004:4", "003:10"),
        ("004:24", "003:13"),
        ("002:11", "002:2"),  # two RLHF snippets
    ],
)
def test_different_works_stay_apart(papers, a, b):
    assert _paper_at(papers, a) is not _paper_at(papers, b)


def test_merged_fields_follow_source_preference(papers):
    webgpt = _paper_at(papers, "004:36")
    assert webgpt.title == "WebGPT: Browser-assisted question-answering with human feedback"
    assert webgpt.abstract == _raw_line(INDEX, 21)
    assert webgpt.authors[0] == "Reiichiro Nakano" and webgpt.published == "2021-12-17"
    assert [s.kind for s in webgpt.sources] == [RESEARCH_PAGE, PAPER_INDEX, BLOG_INDEX]
    assert [s.title for s in webgpt.sources] == [
        "Improving Accuracy of Language Models through Web Browsing",
        "WebGPT: Browser-assisted question-answering with human feedback",
        "WebGPT: Improving the Factual Accuracy of Language Models through Web Browsing",
    ]
    gsm8k = _paper_at(papers, "004:40")
    assert gsm8k.title == "Training Verifiers to Solve Math Word Problems"
    assert gsm8k.abstract == _raw_line(RESEARCH, 11)  # the paper's text, not the blog teaser
    cai = _paper_at(papers, "002:4")
    assert cai.title == "Constitutional AI: Harmlessness from AI Feedback"
    assert cai.abstract == _raw_line(RESEARCH, 29)  # the untruncated copy wins over the "..." snippet
    summarize = _paper_at(papers, "002:13")
    assert summarize.title == "Learning to summarize from human feedback"
    assert summarize.abstract == _raw_line(INDEX, 27)
    assert summarize.categories == ("cs.CL",) and summarize.authors[0] == "Nisan Stiennon"


def test_titles_are_never_invented(papers):
    untitled = [p for p in papers if p.title is None]
    assert {_where(s) for p in untitled for s in p.sources} == {
        _ref(f"002:{n}") for n in (2, 6, 7, 8, 9, 10, 11, 12, 14, 15)
    }
    for paper in untitled:
        assert paper.display_title.startswith("[untitled]")
        assert paper.abstract.endswith("\u2026") and "..." not in paper.abstract[-5:]


def test_every_paper_is_a_seed_without_arxiv_id_and_keeps_source_text(papers):
    for paper in papers:
        assert paper.origin == "seed" and paper.arxiv_id is None and paper.abstract
        for source in paper.sources:
            assert source.text in (SEEDS / source.file).read_text(encoding="utf-8").splitlines()
    snippet = _paper_at(papers, "002:3").sources[1]
    assert snippet.text == _raw_line(LISTING, 3) and snippet.title is None


def test_output_is_deterministic_and_in_first_appearance_order(papers):
    assert parse_seeds(SEEDS) == papers
    entries = [e for path in seed_files(SEEDS) for e in parse_seed_file(path)]
    shuffled = entries[:]
    random.Random(7).shuffle(shuffled)
    assert merge_entries(shuffled) == papers
    firsts = [min(_where(s) for s in p.sources) for p in papers]
    assert firsts == sorted(firsts)


def test_prefix_rule_allows_a_cut_last_word_but_needs_twelve_words():
    full = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen."
    cut = SeedEntry(
        "b.txt", 1, ARXIV_LISTING, None, "one two three four five six seven eight nine ten eleven tw...", True
    )
    assert len(merge_entries([SeedEntry("a.txt", 1, RESEARCH_PAGE, "T", full), cut])) == 1
    short = SeedEntry("b.txt", 1, ARXIV_LISTING, None, "one two three four five six...", True)
    assert len(merge_entries([SeedEntry("a.txt", 1, RESEARCH_PAGE, "T", full), short])) == 2


def test_a_second_blog_index_announcing_the_same_paper_joins_it_too(tmp_path: Path, papers):
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    blog = (SEEDS / BLOG).read_text(encoding="utf-8")
    (seeds / "006_mirror.txt").write_text("Blog\n\n" + blog.split("\n\n", 1)[1], encoding="utf-8")
    merged = parse_seeds(seeds)
    assert len(merged) == len(papers)
    critiques = _paper_at(merged, "004:20")
    assert critiques.title == "Self-critiquing models for assisting human evaluators"
    assert [(s.file, s.line) for s in critiques.sources] == [(INDEX, 7), (BLOG, 20), ("006_mirror.txt", 19)]


def test_a_revised_abstract_with_the_same_opening_is_the_same_work():
    opening = " ".join(f"w{n}" for n in range(20))
    v1 = SeedEntry("a.txt", 1, RESEARCH_PAGE, "Old title", opening + " and then the first version ends.")
    v2 = SeedEntry("b.txt", 4, PAPER_INDEX, "New title", opening + " but the second version says more.")
    (paper,) = merge_entries([v1, v2])
    assert paper.title == "New title" and len(paper.sources) == 2
    other = SeedEntry("b.txt", 9, PAPER_INDEX, "Other", " ".join(f"w{n}" for n in range(19)) + " x y z")
    assert len({seed_key(p) for p in merge_entries([v1, v2, other])}) == 2


# --- keys ------------------------------------------------------------------------------------------------


def test_seed_keys_are_unique_and_stable(papers):
    keys = [seed_key(p) for p in papers]
    assert len(set(keys)) == len(keys)
    assert keys == [seed_key(p) for p in parse_seeds(SEEDS)]


def test_seed_keys_survive_small_edits_and_lost_sources(tmp_path: Path, papers):
    edited = tmp_path / "seeds"
    edited.mkdir()
    for path in seed_files(SEEDS):
        text = path.read_text(encoding="utf-8")
        if path.name == RESEARCH:
            text = "\n" + text.replace("Constitutional AI: Harmlessness", "Constitutional AI:  harmlessness")
            text = text.replace("As AI systems become more capable,", "As AI systems become more capable ,  ")
        if path.name != LISTING:  # drop the arXiv listing entirely
            (edited / path.name).write_text(text, encoding="utf-8")
    before = {seed_key(p) for p in papers}
    after = {seed_key(p) for p in parse_seeds(edited)}
    assert after <= before
    assert len(after) == len(before) - 10  # only the ten listing-only papers are gone


def test_a_fifth_file_in_a_known_format_merges_in(tmp_path: Path, papers):
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    (seeds / "005_mine.txt").write_text(
        "LGNov 2, 2021\n"
        "Training Verifiers to Solve Math Word ProblemsKarl Cobbe, Vineet Kosaraju et al.\n"
        f"{_raw_line(RESEARCH, 11)} We find that verification improves performance.\n"
        "AIJan 5, 2026\n"
        "A Completely New PaperAda Lovelace\n"
        "We study something entirely new that no other seed mentions at all, in enough words to count.\n",
        encoding="utf-8",
    )
    merged = parse_seeds(seeds)
    assert len(merged) == len(papers) + 1
    gsm8k = _paper_at(merged, "004:40")
    assert {s.file for s in gsm8k.sources} == {RESEARCH, BLOG, "005_mine.txt"}
    assert gsm8k.authors == ("Karl Cobbe", "Vineet Kosaraju") and gsm8k.published == "2021-11-02"
    assert merged[-1].title == "A Completely New Paper" and merged[-1].categories == ("cs.AI",)


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"Just some notes\nthat are not a seed list\n",
        b"\xff\xfe\x00binary\x00junk",
        b"Research\n\nAbout us\n",
    ],
    ids=["empty", "notes", "binary", "chrome-only"],
)
def test_unknown_or_unreadable_file_raises_a_clear_error(tmp_path: Path, content: bytes):
    path = tmp_path / "bad_seed.txt"
    path.write_bytes(content)
    with pytest.raises(SeedFormatError) as info:
        parse_seed_file(path)
    assert "bad_seed.txt" in str(info.value) and info.value.file == "bad_seed.txt"
    assert isinstance(info.value, CatalogError)
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_a_bad_file_in_the_seeds_dir_names_that_file(tmp_path: Path):
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    (seeds / "009_notes.txt").write_text("my reading list\nsee slack\n", encoding="utf-8")
    with pytest.raises(SeedFormatError, match="009_notes.txt"):
        parse_seeds(seeds)


def test_missing_file_raises_seed_format_error(tmp_path: Path):
    with pytest.raises(SeedFormatError, match="missing.txt"):
        parse_seed_file(tmp_path / "missing.txt")


def test_detect_format_on_minimal_documents():
    assert detect_format(["Title", "An abstract of a paper in several words here.", "Read on Arxiv"]) == RESEARCH_PAGE
    assert detect_format(["Nothing here"]) is None


# --- into the catalog (T13) ------------------------------------------------------------------------------


def test_seeds_load_into_a_fresh_catalog_once(fresh_core, papers):
    from digests import catalog

    stored = catalog.seed_papers(fresh_core)
    assert len(stored) == len(papers)
    assert {(s.file, s.line) for p in stored for s in p.sources} == {
        (s.file, s.line) for p in papers for s in p.sources
    }
    assert catalog.sync_seeds(fresh_core) is False  # nothing changed: nothing reloaded
