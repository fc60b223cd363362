"""Benchmark and check theme matching.

    python bench/score.py                 # score 20,000 papers against all themes: time and peak memory
    python bench/score.py --n 5000        # another size
    python bench/score.py --quality       # AUC / precision / recall on the labelled tune and held-out halves,
                                          # for the shipped scorer and the variants it was chosen over
    python bench/score.py --fit           # refit the shared coefficients on the tune half (prints them)

The labelled set is tests/fixtures/labelled/papers.jsonl (real arXiv papers, a few marked synthetic);
coefficients are fitted on `split == "tune"` only and reported on `split == "heldout"`.
Targets (issue 4): 20,000 papers in under 1 s and under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digests.match import COEF, INTERCEPT, Matcher
from digests.models import Paper
from digests.seeds import parse_seeds
from digests.settings import load_settings
from digests.themes import load_themes

LABELLED = ROOT / "tests" / "fixtures" / "labelled" / "papers.jsonl"


def load_labelled(split: str | None = None) -> list[dict]:
    """Return the labelled rows (all, or one split), each with a `paper` built from title + abstract."""
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        cats = tuple(row["cats"].split())
        row["paper"] = Paper(
            title=row["title"],
            abstract=row["abstract"],
            categories=cats,
            primary_category=cats[0] if cats else None,
            arxiv_id=row["id"],
            origin="arxiv",
        )
    return [r for r in rows if split is None or r["split"] == split]


def default_matcher() -> Matcher:
    """Return a matcher on the shipped themes and the real seed catalog."""
    settings = load_settings({"DIGESTBOT_HOME": str(ROOT / ".bench-home")})
    return Matcher.build(load_themes(settings), parse_seeds(settings.seeds_dir))


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return ROC AUC (ties count half), without scikit-learn."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def precision_recall(labels: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """Return (precision, recall) of boolean predictions."""
    tp = float((predicted & (labels == 1)).sum())
    return tp / max(predicted.sum(), 1), tp / max((labels == 1).sum(), 1)


def best_precision_at_recall(labels: np.ndarray, scores: np.ndarray, recall: float = 0.8) -> float:
    """Return the best precision over thresholds whose recall is at least `recall`."""
    best = 0.0
    for cut in np.unique(scores):
        p, r = precision_recall(labels, scores >= cut)
        if r >= recall:
            best = max(best, p)
    return best


def quality(matcher: Matcher, rows: list[dict], z: np.ndarray | None = None) -> dict[str, float]:
    """Return AUC of the max score over themes and P/R of "matched any theme" on `rows`."""
    labels = np.array([r["label"] for r in rows])
    if z is None:
        scores = matcher.probabilities(matcher.features([r["paper"] for r in rows]))
    else:
        scores = 1 / (1 + np.exp(-z))
    best = scores.max(axis=1)
    matched = (scores >= matcher.thresholds[None, :]).any(axis=1)
    p, r = precision_recall(labels, matched)
    return {"auc": auc(labels, best), "precision": p, "recall": r, "p_at_r80": best_precision_at_recall(labels, best)}


def fit(matcher: Matcher, rows: list[dict], columns: list[int], c: float = 1.0) -> tuple[np.ndarray, float]:
    """Fit shared logistic coefficients on `rows`.

    Positives: each relevant paper's row for its labelled theme. Negatives: each irrelevant paper's
    highest-scoring theme row (the one "max over themes" sees), re-picked over a few rounds.
    """
    from sklearn.linear_model import LogisticRegression

    names = [t.name for t in matcher.themes]
    stacked = matcher.features([r["paper"] for r in rows]).stack()[:, :, columns]
    pos = np.array([stacked[i, names.index(r["theme"])] for i, r in enumerate(rows) if r["label"] == 1])
    neg_all = np.array([stacked[i] for i, r in enumerate(rows) if r["label"] == 0])
    coef, intercept = np.ones(len(columns)), 0.0
    for _ in range(4):
        neg = neg_all[np.arange(len(neg_all)), (neg_all @ coef).argmax(axis=1)]
        x = np.vstack([pos, neg])
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        model = LogisticRegression(C=c, max_iter=1000).fit(x, y)
        coef, intercept = model.coef_[0], float(model.intercept_[0])
    return coef, intercept


def run_quality(refit: bool) -> None:
    """Print the quality of the shipped scorer and of the variants, fitted on tune, reported on both halves."""
    matcher = default_matcher()
    tune, held = load_labelled("tune"), load_labelled("heldout")
    variants = {
        "tfidf similarity only": [3, 4],
        "tfidf similarity + context": [3, 4, 5],
        "keywords + context + negatives": [0, 1, 2, 5, 6],
        "all without negatives": [0, 1, 2, 3, 4, 5],
        "all but category": [0, 1, 2, 3, 4, 5, 6],
        "all features (shipped form)": [0, 1, 2, 3, 4, 5, 6, 7],
    }
    for name, columns in variants.items():
        coef, intercept = fit(matcher, tune, columns)
        out = []
        for rows in (tune, held):
            z = matcher.features([r["paper"] for r in rows]).stack()[:, :, columns] @ coef + intercept
            out.append(quality(matcher, rows, z))
        print(f"{name:34s} tune {_fmt(out[0])}\n{'':34s} held {_fmt(out[1])}")
        if refit and len(columns) == len(COEF):
            print("  fitted COEF =", np.round(coef, 2).tolist(), "INTERCEPT =", round(intercept, 2))
    print(f"{'shipped COEF ' + str(COEF.tolist()):34s}\n  intercept {INTERCEPT}")
    print(f"{'shipped':34s} tune {_fmt(quality(matcher, tune))}\n{'':34s} held {_fmt(quality(matcher, held))}")
    recent = [r for r in held if r.get("source")]
    print(f"{'shipped, held-out full 2026 abstracts':34s} held {_fmt(quality(matcher, recent))} (n={len(recent)})")
    _supervised_reference(tune, held)


def _supervised_reference(tune: list[dict], held: list[dict]) -> None:
    """Print a supervised TF-IDF logistic regression trained on the tune texts (a reference, not shipped)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    text = [r["title"] + ". " + r["abstract"] for r in tune]
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, stop_words="english")
    model = LogisticRegression(C=10, max_iter=1000).fit(vec.fit_transform(text), [r["label"] for r in tune])
    s = model.predict_proba(vec.transform([r["title"] + ". " + r["abstract"] for r in held]))[:, 1]
    labels = np.array([r["label"] for r in held])
    p, rc = precision_recall(labels, s >= 0.5)
    print(
        f"{'supervised tfidf LR (reference)':34s} held auc={auc(labels, s):.3f} P={p:.3f} R={rc:.3f} "
        f"P@R80={best_precision_at_recall(labels, s):.3f}"
    )


def _fmt(q: dict[str, float]) -> str:
    return f"auc={q['auc']:.3f} P={q['precision']:.3f} R={q['recall']:.3f} P@R80={q['p_at_r80']:.3f}"


def synthetic_papers(n: int, relevant_share: float = 0.1, seed: int = 0) -> list[Paper]:
    """Return `n` papers with realistic abstracts: labelled abstracts recombined sentence by sentence.

    About `relevant_share` of them are built from relevant abstracts (a busy arXiv week in cs.CL/cs.LG/cs.AI
    has well under a fifth on these themes); the rest from irrelevant ones.
    """
    rng = random.Random(seed)
    rows = load_labelled()
    pools = {
        label: [s.strip() + "." for r in rows if r["label"] == label for s in r["abstract"].split(". ") if len(s) > 30]
        for label in (0, 1)
    }
    titles = {label: [r["title"] for r in rows if r["label"] == label] for label in (0, 1)}
    papers = []
    for i in range(n):
        label = 1 if rng.random() < relevant_share else 0
        abstract = " ".join(rng.choice(pools[label]) for _ in range(rng.randint(5, 9)))
        papers.append(
            Paper(
                title=f"{rng.choice(titles[label])} {i}",
                abstract=abstract,
                arxiv_id=f"2611.{i:05d}",
                categories=("cs.CL",),
                origin="arxiv",
                id=i + 1,
            )
        )
    return papers


def run_bench(n: int, relevant_share: float) -> None:
    """Score `n` papers against every theme; print wall time (best of 3) and peak traced memory of both entry points.

    Timing runs without tracemalloc (it slows every allocation); a separate traced run measures peak memory.
    """
    import resource

    matcher = default_matcher()
    papers = synthetic_papers(n, relevant_share)
    chars = sum(len(p.abstract) + len(p.title or "") for p in papers)
    matcher.score_matrix(papers[:200])  # warm up imports and caches
    results = {}
    for name, fn in (("score_matrix", matcher.score_matrix), ("score", matcher.score)):
        times, cpu = [], []
        for _ in range(3):
            start, start_cpu = time.perf_counter(), time.process_time()
            out = fn(papers)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        tracemalloc.start()
        fn(papers)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        results[name] = (min(times), min(cpu), peak, out)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    matched = sum(any(s.matched for s in row) for row in results["score"][3])
    print(f"{n} papers ({chars / 1e6:.1f} M chars) x {len(matcher.themes)} themes; {matched} matched a theme")
    for name, label in (("score_matrix", "scores only"), ("score", "ThemeScore + why + terms")):
        seconds, cpu_seconds, peak, _ = results[name]
        print(
            f"{name:12s} ({label}): {seconds:.3f} s wall, {cpu_seconds:.3f} s CPU (best of 3), "
            f"peak {peak / 2**20:.0f} MB traced"
        )
    print(f"process max RSS {rss:.0f} MB (includes numpy/scipy and the labelled set)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--relevant-share", type=float, default=0.1, help="share of on-theme papers (default 0.1)")
    args = parser.parse_args()
    if args.quality or args.fit:
        run_quality(refit=args.fit)
    else:
        run_bench(args.n, args.relevant_share)


if __name__ == "__main__":
    main()
