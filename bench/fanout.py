"""Fan-out bench: build and deliver this week's digest to N channels through a loopback fake platform.

The fake (tests/fake_platform.py) is a real aiohttp server on 127.0.0.1 port 0 that allows one message
per second per channel and `--allowed-rate` requests per second overall, answering 429 + Retry-After
past either. Delivery goes through the real ledger, deliverer and rate limiter; digests are built by
digests.build from a temporary catalog (seeds + 200 arXiv papers announced this week).

    python bench/fanout.py --channels 100 --channels 1000         # about 25 s
    python bench/fanout.py --channels 10000                        # about 210 s at 50 req/s

Targets (issue 5): build 10,000 digests < 10 s; delivery >= 90% of the allowed rate; < 1% of requests
answered 429; 0 duplicates; 0 lost; peak memory < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIXTURE = ROOT / "tests" / "fixtures" / "realdata" / "arxiv_api_2026_search_cat-cs.AI_OR_cat-cs.LG_max50.xml"
THEME_SETS = (("rlhf",), ("oversight",), ("interpretability", "evaluations"), ("reasoning",),
              ("rlhf", "safety-policy"), ("instruction-tuning",))


def peak_mb() -> float:
    """Return this process's peak resident memory in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def week_papers(n: int = 200) -> list:
    """Return `n` arXiv papers: the 50 real ones from the fixture, then variants with fresh ids."""
    from digests.arxiv_feed import parse_atom

    real = parse_atom(FIXTURE.read_bytes()).papers
    papers = list(real)
    i = 0
    while len(papers) < n:
        base = real[i % len(real)]
        papers.append(dataclasses.replace(base, arxiv_id=f"2611.{90000 + i:05d}", version=1,
                                          title=f"{base.title} (variant {i})"))
        i += 1
    return papers[:n]


def prepare_catalog(core, now: datetime, n_channels: int) -> list[str]:
    """Load this week's papers with theme scores, one fetch run, and `n_channels` Slack channels."""
    from digests import catalog
    from digests.fetch import record_run
    from digests.models import FetchRun, ThemeScore

    stored = catalog.upsert_arxiv_papers(core, week_papers(), now).new
    names = [t.name for t in core.themes] or ["rlhf"]
    for i, paper in enumerate(stored):
        hits = {names[i % len(names)], names[(i * 7 + 3) % len(names)]}
        catalog.store_scores(core, paper.id, [
            ThemeScore(name, 0.3 + (i % 50) / 100, name in hits, why=("A seed paper",), terms=("preference",))
            for name in names
        ])
    stamp = now.isoformat(timespec="seconds")
    record_run(core, FetchRun(id=None, started=stamp, finished=stamp, window_start=stamp[:10], window_end=stamp[:10],
                              outcome="ok", papers=len(stored), scanned={"cs.AI": 120, "cs.LG": 80}))
    keys = [f"slack:TBENCH:C{i:06d}" for i in range(n_channels)]
    rows = [{"key": k, "themes_json": json.dumps([t for t in THEME_SETS[i % len(THEME_SETS)] if t in names] or names[:1]),
             "tz": "UTC", "source": "cli", "created_at": stamp, "modified_at": stamp} for i, k in enumerate(keys)]
    core.db["channels"].insert_all(rows, batch_size=1000)
    return keys


def time_builds(core, keys: list[str], now: datetime) -> tuple[float, int]:
    """Build every channel's digest in one `build_digests` call (results dropped); return seconds and items."""
    from digests.build import build_digests

    started = time.perf_counter()
    items = sum(len(d.items) for d in build_digests(core, keys, now))
    return time.perf_counter() - started, items


async def deliver_all(core, keys: list[str], now: datetime, allowed: int, rate: float, in_flight: int) -> dict:
    """Deliver every channel's digest through the fake platform; return the figures."""
    import aiohttp

    from bot.deliver import Deliverer, catalog_lane
    from bot.posting import RateLimiter
    from tests.fake_platform import FakePlatform, HTTPPoster

    core.cache["rate_limiters"] = {"slack": RateLimiter(rate, 1.0)}
    async with FakePlatform(global_rate=allowed) as fake, aiohttp.ClientSession() as session:
        poster = HTTPPoster(fake.url, session)
        deliverer = Deliverer(core, posters=lambda platform: poster, max_in_flight=in_flight)
        started = time.perf_counter()
        budget = len(keys) / allowed * 3 + 60
        results = await asyncio.wait_for(deliverer.deliver_many((k, now) for k in keys), timeout=budget)
        elapsed = time.perf_counter() - started
        catalog_lane(core).close()
    delivered = {c for c, _, _ in fake.messages}
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    span = (fake.messages[-1][2] - fake.messages[0][2]) if len(fake.messages) > 1 else elapsed
    achieved = (len(fake.messages) - 1) / span if span > 0 else float("nan")
    return {
        "deliver_seconds": round(elapsed, 2),
        "messages": len(fake.messages),
        "rate_msgs_per_s": round(achieved, 2),
        "rate_vs_allowed": round(achieved / allowed, 3),
        "requests": fake.requests,
        "answered_429": fake.limited,
        "share_429": round(fake.limited / max(fake.requests, 1), 4),
        "duplicates": fake.duplicates(),
        "lost": len(set(keys) - delivered),
        "outcomes": outcomes,
    }


def bench(n: int, allowed: int, rate: float, in_flight: int) -> dict:
    """Run one bench at `n` channels in a fresh DIGESTBOT_HOME; return the figures."""
    from digests.service import open_core

    with tempfile.TemporaryDirectory() as home:
        os.environ["DIGESTBOT_HOME"] = home
        now = datetime.now(UTC)
        core = open_core(clock=lambda: datetime.now(UTC))
        keys = prepare_catalog(core, now, n)
        build_s, items = time_builds(core, keys, now)
        figures = {"channels": n, "build_seconds": round(build_s, 2), "items_built": items}
        figures |= asyncio.run(deliver_all(core, keys, now, allowed, rate, in_flight))
        ledger_done = core.db.execute("select count(*) from deliveries where status = 'done'").fetchone()[0]
        figures["ledger_done"] = ledger_done
        figures["peak_mb"] = round(peak_mb(), 1)
        core.db.close()
    return figures


def main() -> None:
    """Parse flags, run the benches, print one line per size (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, action="append", help="channel count (repeatable; default 100, 1000)")
    parser.add_argument("--allowed-rate", type=int, default=50, help="the fake's global requests per second")
    parser.add_argument("--rate", type=float, default=48.0, help="our client-side pace, requests per second")
    parser.add_argument("--in-flight", type=int, default=8, help="requests in flight at most")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    for n in args.channels or [100, 1000]:
        figures = bench(n, args.allowed_rate, args.rate, args.in_flight)
        if args.json:
            print(json.dumps(figures), flush=True)
        else:
            print(
                f"{n:>6} channels: build {figures['build_seconds']:.2f}s | deliver {figures['deliver_seconds']:.1f}s "
                f"at {figures['rate_msgs_per_s']:.1f} msg/s = {figures['rate_vs_allowed']:.0%} of {args.allowed_rate}/s | "
                f"429s {figures['answered_429']}/{figures['requests']} ({figures['share_429']:.2%}) | "
                f"duplicates {figures['duplicates']} | lost {figures['lost']} | ledger done {figures['ledger_done']} | "
                f"peak {figures['peak_mb']:.0f} MB | {figures['outcomes']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
