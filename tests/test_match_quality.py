"""Matching quality on the held-out half of the labelled set (a quality check, not a timing test).

tests/fixtures/labelled/papers.jsonl holds real arXiv papers (title + abstract as recalled, arXiv id where
known; a few hard negatives are marked `synthetic`), labelled relevant/irrelevant. Coefficients and the
threshold were chosen on `split == "tune"` only. The bar (issue 4): ROC AUC >= 0.92 for relevant vs
irrelevant on the max score over themes, and precision >= 0.85 at recall >= 0.80 for "matched any theme".
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest

from digests.match import Matcher
from digests.models import Paper
from digests.seeds import parse_seeds
from digests.settings import load_settings
from digests.themes import load_themes

LABELLED = Path(__file__).parent / "fixtures" / "labelled" / "papers.jsonl"


def rows(split: str) -> list[dict]:
    out = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in out if r["split"] == split]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


@pytest.fixture(scope="module")
def heldout_scores() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    settings = load_settings({"DIGESTBOT_HOME": "/nonexistent"})
    themes = load_themes(settings)
    matcher = Matcher.build(themes, parse_seeds(settings.seeds_dir))
    held = rows("heldout")
    papers = [Paper(title=r["title"], abstract=r["abstract"], arxiv_id=r["id"], origin="arxiv") for r in held]
    scores = matcher.score(papers)
    labels = np.array([r["label"] for r in held])
    best = np.array([max(s.score for s in row) for row in scores])
    matched = np.array([any(s.matched for s in row) for row in scores])
    return labels, best, matched


def test_labelled_set_is_large_balanced_and_split_without_overlap():
    tune, held = rows("tune"), rows("heldout")
    counts = collections.Counter((r["label"], r["split"]) for r in tune + held)
    assert min(counts.values()) >= 90
    assert not {r["title"] for r in tune} & {r["title"] for r in held}
    kinds = collections.Counter(r["kind"] for r in held if r["label"] == 0)
    for kind in (
        "quantization",
        "word-alignment",
        "speech-alignment",
        "recsys-preference",
        "robotics-reward",
        "tabular-interpretability",
        "cyber-red-team",
        "kg-reasoning",
        "ordinary",
    ):
        assert kinds[kind] >= 3, kind


def test_heldout_roc_auc_of_max_theme_score(heldout_scores):
    labels, best, _ = heldout_scores
    assert roc_auc(labels, best) >= 0.92


def test_heldout_precision_and_recall_of_matched_any_theme(heldout_scores):
    labels, _, matched = heldout_scores
    true_pos = (matched & (labels == 1)).sum()
    precision = true_pos / matched.sum()
    recall = true_pos / (labels == 1).sum()
    assert precision >= 0.85 and recall >= 0.80, (precision, recall)
