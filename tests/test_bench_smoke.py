"""The lookup bench runs end to end at a tiny size (its figures are for people, not for assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_lookup_bench_runs_and_prints_figures(tmp_path):
    out = subprocess.run(
        [sys.executable, "bench/lookup.py", "--sizes", "300", "--queries", "8", "--keep", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    assert "digestbot --help:" in out and "n=      300" in out and "papers/s" in out
    for kind in ("exact title", "partial title", "free words", "arxiv id", "hostile"):
        assert kind in out
    again = subprocess.run(
        [sys.executable, "bench/lookup.py", "--sizes", "300", "--queries", "8", "--keep", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    assert "catalog reused" in again
