"""Benchmark how fast the Slack app acknowledges `/paper` and `/digest` while the arXiv lane is busy.

Slack drops a slash command that isn't acknowledged within 3 seconds. The app runs for real: bolt's AsyncApp
served over HTTP on a loopback port, every request signed with slack_sdk's signer, answers going to a loopback
fake Slack Web API. Before the timed requests, `/paper 1706.03762` (not in the catalog) starts an arXiv lookup
against a fake arXiv that holds every request until the end, so the arXiv lane is busy throughout, as when the
client sleeps on arXiv's 3-second politeness delay. Ack latency runs from sending the HTTP request to receiving
the HTTP response; answer latency (catalog commands only) runs until the fake received the response-URL post.

    python bench/slack_ack.py                     # 200 requests, 8 in flight
    python bench/slack_ack.py -n 1000 -c 32
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import aiohttp  # noqa: E402
from slack_fakes import TEST_BOT_TOKEN, TEST_SIGNING_SECRET, FakeSlackAPI, SlowArxiv, serve_app, sign_headers, slash_body  # noqa: E402

WORKLOAD = [
    ("/paper", "reward model overoptimization"),
    ("/digest", "topics"),
    ("/paper", "constitutional ai"),
    ("/digest", "status"),
    ("/paper", "weak-to-strong generalization"),
    ("/digest", "preview"),
    ("/paper", "1207.7214"),  # an arXiv id not in the catalog: queues behind the held lookup
    ("/digest", "help"),
]
ACK_LIMIT_SECONDS = 3.0
"""Slack: acknowledge a slash command within 3 seconds (https://docs.slack.dev/interactivity/implementing-slash-commands)."""


def pct(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def run(n: int, concurrency: int) -> dict[str, list[float]]:
    os.environ["DIGESTBOT_HOME"] = tempfile.mkdtemp(prefix="slack-ack-")
    from bot.slack_app import build_slack_app, close_lanes, make_web_app
    from digests.channels import subscribe
    from digests.service import open_core

    fake = await FakeSlackAPI().start()
    arxiv = SlowArxiv()
    core = open_core()
    settings = dataclasses.replace(core.settings, slack_bot_token=TEST_BOT_TOKEN, slack_signing_secret=TEST_SIGNING_SECRET,
                                   slack_api_url=fake.api_url, arxiv_api_url=arxiv.url)
    core = dataclasses.replace(core, settings=settings)
    subscribe(core, "slack:T0001:C2147483705", [core.theme_names[0]])
    server = await serve_app(make_web_app(build_slack_app(core)))
    acks: dict[str, list[float]] = {"/paper": [], "/digest": []}
    sent_at: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:

        async def one(i: int, command: str, text: str) -> None:
            name = f"r{i}"
            body = slash_body(command, text, fake.response_url(name))
            start = sent_at[name] = time.perf_counter()
            async with session.post(server.url, data=body.encode(), headers=sign_headers(body)) as response:
                await response.read()
                assert response.status == 200, response.status
            if i >= 0:
                acks[command].append(time.perf_counter() - start)

        await one(-1, "/paper", "1706.03762")
        await asyncio.get_running_loop().run_in_executor(None, arxiv.arrived.wait, 30)
        gate = asyncio.Semaphore(concurrency)

        async def gated(i: int) -> None:
            async with gate:
                await one(i, *WORKLOAD[i % len(WORKLOAD)])

        await asyncio.gather(*(gated(i) for i in range(n)))
        catalog_names = {f"r{i}" for i in range(n) if "1207.7214" not in WORKLOAD[i % len(WORKLOAD)][1]}
        await fake.wait_for(lambda f: catalog_names <= {c.name for c in f.of("response")}, timeout=300)
        answers = [c.at - sent_at[c.name] for c in fake.of("response") if c.name in catalog_names]
        arxiv_busy = not arxiv.released.is_set()
        arxiv.release()
    await server.stop()
    close_lanes(core)
    arxiv.close()
    await fake.stop()
    return {**acks, "answer (catalog commands)": answers, "_busy": [float(arxiv_busy)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="timed requests (default 200)")
    parser.add_argument("-c", type=int, default=8, help="requests in flight (default 8)")
    args = parser.parse_args()
    results = asyncio.run(run(args.n, args.c))
    busy = results.pop("_busy")[0]
    print(f"{args.n} signed slash commands, {args.c} in flight, arXiv lane busy throughout: {bool(busy)}")
    for label, values in results.items():
        ms = [v * 1000 for v in values]
        print(f"{label:>26}: n={len(ms):4d}  p50={statistics.median(ms):7.1f} ms  p99={pct(ms, 99):7.1f} ms  "
              f"max={max(ms):7.1f} ms")
    worst = max(max(results["/paper"]), max(results["/digest"]))
    print(f"ack target: every ack well under {ACK_LIMIT_SECONDS:g} s -> {'OK' if worst < ACK_LIMIT_SECONDS / 3 else 'MISSED'}")


if __name__ == "__main__":
    main()
