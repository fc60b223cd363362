"""Benchmark `/paper query:` autocomplete latency on catalogs of 1k and 100k papers.

Synthetic papers come from bench/lookup.py's generator and go in through the catalog's import path
(`importer.import_papers`, what `digestbot catalog import` uses). Each keystroke-like partial query is sent as a real
type-4 discord.Interaction through the generated CommandTree; the timer runs from dispatch until the loopback fake
Discord API has recorded the autocomplete callback. That covers the lane hop, the catalog work, choice building
and discord.py's HTTP request, but not the internet. Discord drops answers slower than 3 s.

    python bench/discord_autocomplete.py                  # 1k and 100k
    python bench/discord_autocomplete.py --sizes 1000 --queries 100
    python bench/discord_autocomplete.py --unstemmed      # also the candidate unstemmed prefix index
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import discord
from discord_fakes import REALDATA, FakeDiscordAPI

from bot.commands import autocomplete
from bot.discord_app import build_discord_client, login
from digests import catalog, importer, lookup
from digests.service import open_core
from digests.settings import load_settings


def _lookup_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_lookup", ROOT / "bench" / "lookup.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def partials(titles: list[str], count: int, rng: random.Random) -> list[str]:
    """Return what people type mid-word: 1-4 title words with the last one cut, some ids, some misses."""
    out = []
    for _ in range(count):
        words = rng.choice(titles).split()
        n = rng.randint(1, min(4, len(words)))
        typed = words[:n]
        typed[-1] = typed[-1][: rng.randint(1, len(typed[-1]))]
        out.append(" ".join(typed).lower())
    out += ["2001.0", "1706.03762", "zzzz qqqq", "a", "@everyone", "x" * 100][
        : max(1, count // 10)
    ]
    return out


def payload(partial: str, envelope: dict, n: int) -> dict:
    """Return a full type-4 interaction for `/paper query:<partial>` built from the real envelope."""
    data = json.loads(
        (
            REALDATA
            / "discord_real_interaction_type4_autocomplete_data_fragment_2021.json"
        ).read_text()
    )
    data.update(
        name="paper",
        options=[{"focused": True, "name": "query", "type": 3, "value": partial}],
    )
    return {**envelope, "id": str(1381177107555680327 + n), "type": 4, "data": data}


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


UNSTEMMED = "papers_title_prefix_bench"


def unstemmed_prefix_figures(core, texts: list[str]) -> None:
    """Print the latency and misses of the same prefix query on an unstemmed title index (bench-only table).

    The catalog's papers_title_fts uses the porter tokenizer, which stems the typed prefix as well: "trainin" or
    "reasoni" (stems "train", "reason") then match nothing until the word is finished. This measures the
    candidate fix, an unstemmed FTS5 title index with prefix indexes, on the same partial queries.
    """
    core.db.executescript(
        f"""CREATE VIRTUAL TABLE {UNSTEMMED} USING fts5(title, content='papers', content_rowid='id',
            tokenize='unicode61 remove_diacritics 2', prefix='1 2 3');
        INSERT INTO {UNSTEMMED}({UNSTEMMED}) VALUES ('rebuild');"""
    )
    times, empty = [], 0
    for text in texts:
        words = lookup.query_terms(text)
        t0 = time.perf_counter()
        ids = []
        if words:
            quoted = ['"' + w.replace('"', '""') + '"' for w in words]
            match = " ".join(quoted[:-1] + [quoted[-1] + "*"])
            ids = [
                row[0]
                for row in core.db.execute(
                    f"SELECT rowid FROM {UNSTEMMED} WHERE {UNSTEMMED} MATCH ? ORDER BY rowid DESC LIMIT 25",
                    [match],
                )
            ]
            catalog.get_papers(core, ids)
        times.append((time.perf_counter() - t0) * 1000)
        empty += not ids
    core.db.executescript(f"DROP TABLE {UNSTEMMED}")
    print(
        f"           unstemmed title-prefix index (candidate fix):  p50 {percentile(times, 50):7.1f} ms  "
        f"p99 {percentile(times, 99):7.1f} ms  max {max(times):7.1f} ms  ({empty} empty)"
    )


async def run_size(n: int, count: int, unstemmed: bool = False) -> None:
    """Import n papers into a fresh catalog and time autocomplete answers end to end."""
    lookup = _lookup_bench()
    with tempfile.TemporaryDirectory() as home:
        core = open_core(load_settings({"DIGESTBOT_HOME": home}), sync=False)
        papers = lookup.synthetic_papers(n)
        importer.import_papers(core, papers, tag=False)
        rng = random.Random(n)
        texts = partials([p.title for p in papers], count, rng)
        envelope = json.loads(
            (
                REALDATA
                / "discord_real_interaction_type2_slash_command_body_2025-06.json"
            ).read_text()
        )
        async with FakeDiscordAPI() as api:
            settings = dataclasses.replace(core.settings, discord_api_url=api.base_url)
            client = build_discord_client(dataclasses.replace(core, settings=settings))
            client.sync_on_start = False
            await login(client, "good-token")
            times, sizes = [], []
            for i, text in enumerate(texts[:5] + texts):
                interaction = discord.Interaction(
                    data=payload(text, envelope, i), state=client._connection
                )
                t0 = time.perf_counter()
                await client.tree._call(interaction)
                elapsed = (time.perf_counter() - t0) * 1000
                if i >= 5:  # the first five warm the lane's connection and the memo
                    times.append(elapsed)
                    sizes.append(len(api.requests[-1].body["data"]["choices"]))
            await client.close()
        core_times = []
        for text in texts:
            t0 = time.perf_counter()
            autocomplete(core, "paper", None, "query", text)
            core_times.append((time.perf_counter() - t0) * 1000)
        if unstemmed:
            unstemmed_prefix_figures(core, texts)
        empty = sum(1 for size in sizes if size == 0)
        print(
            f"n={n:>7,}  /paper autocomplete over {len(times)} partial queries: p50 {percentile(times, 50):7.1f} ms  "
            f"p99 {percentile(times, 99):7.1f} ms  max {max(times):7.1f} ms  "
            f"(choices per answer: median {percentile(sizes, 50)}, max {max(sizes)}; {empty} empty)"
        )
        print(
            f"           bot.commands.autocomplete alone (no lane, no HTTP): p50 {percentile(core_times, 50):7.1f} ms  "
            f"p99 {percentile(core_times, 99):7.1f} ms  max {max(core_times):7.1f} ms"
        )
        core.db.close()


def main() -> None:
    """Parse arguments and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="1000,100000", help="comma-separated catalog sizes"
    )
    parser.add_argument(
        "--queries", type=int, default=300, help="partial queries per size"
    )
    parser.add_argument(
        "--unstemmed",
        action="store_true",
        help="also time the same prefix query on an unstemmed title index (candidate fix)",
    )
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        asyncio.run(run_size(size, args.queries, args.unstemmed))


if __name__ == "__main__":
    main()
