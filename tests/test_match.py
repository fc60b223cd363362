"""Theme matching: counting, seed tagging, hard negatives, reasons, comparable scores, config, storage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from digests.errors import ConfigError
from digests.match import DEFAULT_THRESHOLD, Lexicon, Matcher, get_matcher, score_and_store, tag_seeds
from digests.models import Paper, Theme
from digests.seeds import parse_seeds
from digests.settings import load_settings
from digests.themes import load_themes

LABELLED = Path(__file__).parent / "fixtures" / "labelled" / "papers.jsonl"


@pytest.fixture(scope="module")
def themes() -> tuple[Theme, ...]:
    return load_themes(load_settings({"DIGESTBOT_HOME": "/nonexistent"}))


@pytest.fixture(scope="module")
def seeds() -> list[Paper]:
    return parse_seeds(load_settings({"DIGESTBOT_HOME": "/nonexistent"}).seeds_dir)


@pytest.fixture(scope="module")
def matcher(themes, seeds) -> Matcher:
    return Matcher.build(themes, seeds)


def labelled(title: str) -> Paper:
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["title"] == title:
            return Paper(title=row["title"], abstract=row["abstract"], arxiv_id=row["id"], origin="arxiv")
    raise AssertionError(f"{title!r} is not in the labelled set")


def by_theme(scores):
    return {s.theme: s for s in scores}


# -- counting ---------------------------------------------------------------------------------


def test_lexicon_counts_phrases_plurals_and_punctuation_variants():
    lexicon = Lexicon(["reward model", "RLHF", "chain-of-thought", "policy", "step by step reasoning"])
    counts = lexicon.count(
        [
            "Reward models and RLHF; chain of thought.",
            "",
            "Two policies, one reward",
            "xrlhf rlhfx",
            "Step-by-step reasoning!",
        ]
    ).toarray()
    assert counts.tolist() == [
        [1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
    ]


def test_lexicon_never_joins_a_phrase_across_two_texts():
    counts = Lexicon(["reward model"]).count(["the learned reward", "model of the world"]).toarray()
    assert counts.sum() == 0


def test_lexicon_handles_unicode_and_texts_larger_than_a_chunk():
    big = "filler words " * 200_000 + "direct preference optimization"
    counts = Lexicon(["direct preference optimization", "naive"]).count(["na\u00efve \U0001f600 DPO", big]).toarray()
    assert counts[1].tolist() == [1, 0]
    assert counts[0].tolist() == [0, 0]  # non-ASCII letters split words rather than guessing


# -- seed tagging -----------------------------------------------------------------------------


def test_every_real_seed_paper_gets_a_theme(themes, seeds):
    tags = tag_seeds(themes, seeds)
    assert len(tags) == len(seeds) > 30
    untagged = [p.display_title for p, t in zip(seeds, tags) if not t]
    assert untagged == []


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("Training Verifiers to Solve Math Word Problems", {"reasoning"}),
        ("Constitutional AI", {"rlhf", "safety-policy"}),
        ("Measuring Progress on Scalable Oversight", {"oversight"}),
        ("Scaling Instruction Finetuned Language Models", {"instruction-tuning"}),
        ("Open Problems in Mechanistic Interpretability", {"interpretability"}),
        ('[untitled] \u201c"Induction heads"', {"interpretability"}),
        ("[untitled] \u201cWe describe our early efforts to red team", {"evaluations"}),
        ("Release Strategies and the Social Impacts", {"safety-policy"}),
        ("Self-critiquing models", {"oversight"}),
    ],
)
def test_tag_seeds_gives_the_expected_themes(themes, seeds, start, expected):
    tags = dict(zip((p.display_title for p in seeds), tag_seeds(themes, seeds)))
    matches = [t for title, t in tags.items() if title.startswith(start)]
    assert len(matches) == 1, start
    assert expected <= set(matches[0])


def test_every_default_exemplar_names_a_real_seed_paper(themes, seeds):
    from digests.match import _exemplar_hits

    missing = [(t.name, e) for t in themes for e in t.exemplars if not any(_exemplar_hits(e, p) for p in seeds)]
    assert missing == []


# -- hard negatives and reasons ---------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers",
        "SmoothQuant: Accurate and Efficient Post-Training Quantization for Large Language Models",
        "SimAlign: High Quality Word Alignments without Parallel Training Data using Static and Contextualized Embeddings",
        "One TTS Alignment To Rule Them All",
        "BPR: Bayesian Personalized Ranking from Implicit Feedback",
        "TALLRec: An Effective and Efficient Tuning Framework to Align Large Language Model with Recommendation",
        "Proximal Policy Optimization Algorithms",
        "Language to Rewards for Robotic Skill Synthesis",
        "A Unified Approach to Interpreting Model Predictions",
        "TabNet: Attentive Interpretable Tabular Learning",
        "CybORG: A Gym for the Development of Autonomous Cyber Agents",
        "Query2box: Reasoning over Knowledge Graphs in Vector Space using Box Embeddings",
        "DeepPath: A Reinforcement Learning Method for Knowledge Graph Reasoning",
    ],
)
def test_hard_negatives_stay_below_every_threshold(matcher, title):
    scores = matcher.score([labelled(title)])[0]
    assert not any(s.matched for s in scores), [(s.theme, s.score) for s in scores if s.matched]
    assert max(s.score for s in scores) < DEFAULT_THRESHOLD


def test_a_match_explains_itself_with_seed_papers_and_theme_terms(matcher, seeds):
    paper = labelled("Direct Preference Optimization: Your Language Model is Secretly a Reward Model")
    rlhf = by_theme(matcher.score([paper])[0])["rlhf"]
    assert rlhf.matched and rlhf.score > 0.9
    assert 1 <= len(rlhf.why) <= 3
    assert set(rlhf.why) <= {p.display_title for p in seeds}
    assert any("human feedback" in w.lower() or "preference" in w.lower() for w in rlhf.why)
    assert "direct preference optimization" in rlhf.terms
    assert "reinforcement learning from human feedback" in rlhf.terms


def test_unmatched_themes_carry_no_reasons(matcher):
    scores = matcher.score([labelled("Let's Verify Step by Step")])[0]
    assert by_theme(scores)["reasoning"].matched
    for s in scores:
        if not s.matched:
            assert s.why == () and s.terms == ()


def test_score_returns_one_score_per_theme_in_config_order(matcher, themes):
    papers = [labelled("Toy Models of Superposition"), Paper(title=None, abstract=""), Paper(title="x")]
    result = matcher.score(papers)
    assert [[s.theme for s in row] for row in result] == [[t.name for t in themes]] * 3
    assert all(0.0 <= s.score <= 1.0 for row in result for s in row)
    assert by_theme(result[0])["interpretability"].matched
    assert not any(s.matched for s in result[1] + result[2])
    assert matcher.score([]) == []


# -- comparable scores and thresholds ---------------------------------------------------------


def test_scores_are_comparable_across_themes(seeds):
    """Two themes with the same evidence get the same score whatever their names or order."""
    base = Theme(
        name="a",
        label="A",
        description="Preference learning for language models",
        keywords=("reward model", "rlhf"),
        exemplars=("Learning to summarize from human feedback",),
    )
    twin = replace(base, name="b", label="B")
    other = Theme(name="c", label="C", description="Interpretability", keywords=("sparse autoencoder",))
    matcher = Matcher.build((other, base, twin), seeds)
    paper = labelled("Scaling Laws for Reward Model Overoptimization")
    scores = by_theme(matcher.score([paper])[0])
    assert scores["a"].score == scores["b"].score > scores["c"].score
    assert list(matcher.thresholds) == [DEFAULT_THRESHOLD] * 3


def test_theme_threshold_moves_only_that_theme(themes, seeds):
    paper = labelled("Direct Preference Optimization: Your Language Model is Secretly a Reward Model")
    strict = tuple(replace(t, threshold=0.99999) if t.name == "rlhf" else t for t in themes)
    before = by_theme(Matcher.build(themes, seeds).score([paper])[0])
    after = by_theme(Matcher.build(strict, seeds).score([paper])[0])
    assert before["rlhf"].matched and not after["rlhf"].matched
    assert before["rlhf"].score == after["rlhf"].score
    assert {n: s.matched for n, s in before.items() if n != "rlhf"} == {
        n: s.matched for n, s in after.items() if n != "rlhf"
    }


def test_matching_thresholds_from_config_override_theme_thresholds(tmp_path, themes):
    from digests.match import thresholds_from_config

    assert thresholds_from_config(themes, {}) == {}
    out = thresholds_from_config(themes, {"threshold": 0.4, "thresholds": {"rlhf": 0.7}})
    assert out["rlhf"] == 0.7 and out["reasoning"] == 0.4


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"thresholds": {"rlfh": 0.6}}, "did you mean 'rlhf'"),
        ({"thresholds": {"rlhf": 2}}, "between 0 and 1"),
        ({"threshold": "high"}, "between 0 and 1"),
        ({"thresholds": [0.5]}, "must be a table"),
        ("nope", "must be a table"),
    ],
)
def test_bad_matching_config_is_a_clear_config_error(themes, section, fragment):
    from digests.match import thresholds_from_config

    with pytest.raises(ConfigError, match=fragment):
        thresholds_from_config(themes, section)


def test_keywords_that_normalise_to_nothing_are_ignored():
    theme = Theme(
        name="x", label="X", description="Reward models", keywords=("\u5f3a\u5316\u5b66\u4e60", "reward model", "~!!")
    )
    paper = Paper(title="A reward model", abstract="We train a reward model for large language models.")
    score = Matcher.build((theme,), []).score([paper])[0][0]
    assert score.matched and score.terms[0] == "reward model"


def test_user_theme_with_keywords_only_and_no_seeds_still_scores():
    theme = Theme(
        name="agents", label="Agents", description="Tool-using LLM agents", keywords=("tool use", "web agents")
    )
    matcher = Matcher.build((theme,), [])
    paper = Paper(title="Web agents with tool use", abstract="We study tool use by large language model web agents.")
    score = matcher.score([paper])[0][0]
    assert score.matched and score.why == () and "tool use" in score.terms


# -- core integration -------------------------------------------------------------------------


def test_get_matcher_is_memoised_and_score_and_store_persists(fresh_core):
    from digests import catalog

    matcher = get_matcher(fresh_core)
    assert get_matcher(fresh_core) is matcher
    paper = labelled("Let's Verify Step by Step")
    stored = catalog.upsert_arxiv_papers(
        fresh_core, [replace(paper, arxiv_id="2305.20050", version=1)], fresh_core.clock()
    )
    pid = stored.new[0].id
    result = score_and_store(fresh_core, stored.new)
    assert set(result) == {pid}
    saved = {s.theme: s for s in catalog.scores_for(fresh_core, pid)}
    assert saved["reasoning"].matched and saved["reasoning"].why == result[pid][4].why
    again = get_matcher(fresh_core)  # storing scores changed the catalog version: rebuilt, same answers
    assert again is not matcher and again.score([paper]) == matcher.score([paper])


def test_seed_papers_are_tagged_in_the_catalog(fresh_core):
    from digests import catalog

    seeds = catalog.seed_papers(fresh_core)
    assert seeds and all(p.themes for p in seeds)


def test_matching_config_section_reaches_the_matcher(tmp_path, fixed_now):
    from digests.service import open_core

    config = tmp_path / "digestbot.toml"
    config.write_text("[matching]\nthresholds = { rlhf = 0.97 }\n", encoding="utf-8")
    settings = load_settings({"DIGESTBOT_HOME": str(tmp_path / "home"), "DIGESTBOT_CONFIG": str(config)})
    core = open_core(settings, clock=lambda: fixed_now)
    matcher = get_matcher(core)
    names = [t.name for t in matcher.themes]
    assert matcher.thresholds[names.index("rlhf")] == 0.97
    assert np.allclose(np.delete(matcher.thresholds, names.index("rlhf")), DEFAULT_THRESHOLD)
