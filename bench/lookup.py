"""Benchmark `/paper` lookup latency at 1k, 100k and 1M catalog papers, the import rate, and `--help` time.

Synthetic papers (Zipf-distributed words from a research vocabulary, so common words are common) are
loaded through the same path as `digestbot catalog import`. Prints one line of figures per size.

Each size is measured the same way, so growth with catalog size is measured rather than cache luck:
the database file is read once (it sits in the OS page cache, as on a server that answers lookups),
100 lookups of other queries warm the process (SQLite's page cache, the word counts), then 300 unseen
queries per kind are timed. `--cold` skips the file read and the warm-up and, when run as root, drops
the OS page cache first: the figures of a lookup that has to read its pages from disk.

    python bench/lookup.py                 # 1k, 100k, 1M (about 10 minutes on 2 cores)
    python bench/lookup.py --sizes 1000,100000 --keep /tmp/lookupdb
    python bench/lookup.py --cold --keep /tmp/lookupdb
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digests import catalog, importer, lookup  # noqa: E402
from digests.models import Paper, SourceRef  # noqa: E402
from digests.service import open_core  # noqa: E402
from digests.settings import load_settings  # noqa: E402

BASE_WORDS = (
    "language model models learning reinforcement human feedback preference reward policy alignment training "
    "fine tuning instruction reasoning math chain thought evaluation benchmark safety red teaming adversarial "
    "robustness interpretability circuits features sparse autoencoders attention heads transformer scaling laws "
    "data synthetic distillation verifier process supervision oversight debate critique honesty deception "
    "calibration uncertainty retrieval agents tools planning code generation multimodal vision speech translation "
    "optimization gradient convergence theory bounds graph networks diffusion generative sampling inference "
    "efficient quantization pruning memory long context tokens pretraining corpus dataset annotation labels"
).split()


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """Return BASE_WORDS plus made-up words, so rare terms exist as in real abstracts."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    extra = {"".join(rng.choice(letters) for _ in range(rng.randint(4, 10))) for _ in range(size)}
    return BASE_WORDS + sorted(extra)


def synthetic_papers(n: int, seed: int = 7) -> list[Paper]:
    """Return n synthetic papers with Zipf-distributed title and abstract words."""
    rng = random.Random(seed)
    words = np.array(vocabulary(30_000, rng))
    gen = np.random.default_rng(seed)
    ranks = np.minimum(gen.zipf(1.3, size=n * 130), len(words)) - 1
    papers, pos = [], 0
    for i in range(n):
        title_len, abs_len = 6 + i % 7, 90 + i % 40
        title = " ".join(words[ranks[pos : pos + title_len]]).capitalize() + f" {i}"
        pos += title_len
        abstract = " ".join(words[ranks[pos : pos + abs_len]])
        pos += abs_len
        papers.append(
            Paper(
                title=title,
                abstract=abstract,
                authors=(f"Author {i % 5000}", f"Writer {i % 777}"),
                arxiv_id=f"{2000 + i // 100000}.{i % 100000:05d}",
                version=1,
                origin="seed",
                sources=(SourceRef(file="bench.jsonl", line=i + 1, kind="import"),),
            )
        )
    return papers


def queries(papers: list[Paper], count: int, rng: random.Random) -> dict[str, list[str]]:
    """Return lookup queries by kind: exact titles, partial titles, free words, ids, hostile text."""
    picks = [rng.choice(papers) for _ in range(count)]
    return {
        "exact title": [p.title for p in picks],  # type: ignore[misc]
        "partial title": [" ".join(p.title.split()[1:4]) for p in picks],  # type: ignore[union-attr]
        "free words": [" ".join(rng.sample(BASE_WORDS, 2)) for _ in picks],
        "arxiv id": [f"{p.arxiv_id}v2" for p in picks],
        "hostile": ['NEAR("x" y*) OR -', "x" * 10_000, "<!channel> @everyone", "日本語 💥"] * (count // 4),
    }


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def read_through(path: Path) -> None:
    """Read the file once, so its pages are in the OS page cache."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def drop_os_cache() -> bool:
    """Drop the OS page cache (root only); return whether it was dropped."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def run_size(n: int, count: int, keep: Path | None = None, cold: bool = False) -> None:
    """Import n papers into a fresh catalog (or reuse one kept under `keep`) and time lookups."""
    with tempfile.TemporaryDirectory() as tmp:
        home = keep / str(n) if keep else Path(tmp)
        settings = load_settings({"DIGESTBOT_HOME": str(home)})
        core = open_core(settings, sync=False)
        papers = synthetic_papers(n)
        imported = ""
        if catalog.count_papers(core) != n:
            start = time.perf_counter()
            importer.import_papers(core, papers, tag=False)
            import_s = time.perf_counter() - start
            imported = f"import {n / import_s:>8,.0f} papers/s ({import_s:.1f} s)"
        else:
            imported = "catalog reused (no import timed)"
        if cold:
            core.db.close()
            state = "cold: OS page cache dropped" if drop_os_cache() else "cold: no warm-up (page cache not dropped)"
            core = open_core(settings, sync=False)
        else:
            read_through(settings.db_path)
            for texts in queries(papers, 20, random.Random(n + 1)).values():
                for text in texts:
                    lookup.search(core, text, limit=5)
            state = "warm: file in page cache, 100 lookups before timing"
        size_mb = settings.db_path.stat().st_size / 1e6
        figures = []
        for kind, texts in queries(papers, count, random.Random(n)).items():
            times = []
            for text in texts:
                t0 = time.perf_counter()
                lookup.search(core, text, limit=5)
                times.append((time.perf_counter() - t0) * 1000)
            figures.append((kind, percentile(times, 50), percentile(times, 99)))
        all_p99 = max(f[2] for f in figures)
        print(f"n={n:>9,}  {size_mb:,.1f} MB  {imported}")
        print(f"    worst p99 {all_p99:.2f} ms ({state})")
        for kind, p50, p99 in figures:
            print(f"    {kind:<14} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
        core.db.close()


def help_time(runs: int = 5) -> float:
    """Return the median wall time of `digestbot --help` in ms."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bot.cli_main", "--help"], capture_output=True, check=True, cwd=ROOT)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    """Parse arguments and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated catalog sizes")
    parser.add_argument("--queries", type=int, default=300, help="queries per kind")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the catalogs under this folder")
    parser.add_argument("--cold", action="store_true", help="time lookups that read their pages from disk")
    args = parser.parse_args()
    print(f"digestbot --help: {help_time():.0f} ms (median of 5)")
    for size in (int(s) for s in args.sizes.split(",")):
        run_size(size, args.queries, args.keep, args.cold)


if __name__ == "__main__":
    main()
