"""Parse a 2000-entry arXiv API page with digests.arxiv_feed and with feedparser; print entries/s for both.

The page is built from the real entries recorded in tests/fixtures/realdata (both Atom formats), each
given a unique id, wrapped in a current-format feed. Target: our parser >= 10x feedparser.

    python bench/parse.py [--entries 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digests.arxiv_feed import parse_atom  # noqa: E402

REALDATA = ROOT / "tests" / "fixtures" / "realdata"
SOURCES = (
    "arxiv_api_2026_search_all-testing_start0_max100.xml",
    "arxiv_api_2026_search_cat-cs.AI_OR_cat-cs.LG_max50.xml",
    "arxiv_api_2026_search_all-testing_start10_max10.xml",
    "arxiv_api_2016_legacy_search_au-del_maestro_10_of_31.xml",
    "arxiv_api_2016_legacy_search_au-del_maestro_ANDNOT.xml",
    "arxiv_api_2025-10_legacy_search_cat-cs.RO_AND_neural_2of5619.xml",
)
ENTRY = re.compile(rb"<entry>.*?</entry>", re.S)
ENTRY_ID = re.compile(rb"<id>http://arxiv.org/abs/[^<]+</id>")


def build_page(n: int) -> bytes:
    """Return an n-entry API page made of the real recorded entries, each with a unique id."""
    pool = [block for name in SOURCES for block in ENTRY.findall((REALDATA / name).read_bytes())]
    entries = [
        ENTRY_ID.sub(f"<id>http://arxiv.org/abs/2611.{i:05d}v1</id>".encode(), pool[i % len(pool)], count=1)
        for i in range(n)
    ]
    head = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        '<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom"'
        ' xmlns="http://www.w3.org/2005/Atom">\n  <id>https://arxiv.org/api/bench</id>\n'
        "  <title>arXiv Query: bench</title>\n  <updated>2026-11-25T12:00:00Z</updated>\n"
        f"  <opensearch:itemsPerPage>{n}</opensearch:itemsPerPage>\n"
        f"  <opensearch:totalResults>{n}</opensearch:totalResults>\n"
        "  <opensearch:startIndex>0</opensearch:startIndex>\n"
    ).encode()
    return head + b"\n".join(entries) + b"\n</feed>\n"


def best_rate(parse, body: bytes, n: int, repeat: int) -> float:
    """Return the best entries/s over `repeat` runs, checking every run saw all n entries."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        count = parse(body)
        best = min(best, time.perf_counter() - t0)
        assert count == n, f"parsed {count} entries, expected {n}"
    return n / best


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    body = build_page(args.entries)
    print(f"page: {args.entries} entries, {len(body) / 1e6:.1f} MB")
    ours = best_rate(lambda b: len(parse_atom(b).papers), body, args.entries, args.repeat)
    print(f"digests.arxiv_feed.parse_atom: {ours:,.0f} entries/s")
    try:
        import feedparser
    except ImportError:
        print("feedparser not installed (pip install -e '.[test]'); no comparison")
        return
    theirs = best_rate(lambda b: len(feedparser.parse(b).entries), body, args.entries, max(1, args.repeat // 2))
    print(f"feedparser {feedparser.__version__}: {theirs:,.0f} entries/s")
    print(f"speed-up: {ours / theirs:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
