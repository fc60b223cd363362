"""A loopback fake chat platform for delivery tests and the fan-out bench, plus small test builders.

`FakePlatform` is a real aiohttp server on 127.0.0.1 port 0 that behaves like a rate-limited chat API:
at most one message per second per channel and `global_rate` requests per second overall (sliding
one-second window), answering 429 + `Retry-After` past either. Channels named in `gone` answer 404
`channel_not_found`. It records every accepted message, so duplicates and losses can be counted.
`HTTPPoster` is the matching Poster (aiohttp client), paced by a shared `RateLimiter`.
"""

from __future__ import annotations

import collections
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from bot.posting import permanent_failure, rate_limited
from digests.models import Classic, Coverage, Digest, DigestItem, Paper


def make_digest(channel: str, week: str = "2026-W48", arxiv_ids: tuple[str, ...] = ("2611.00001", "2611.00002"),
                classic_id: int | None = None) -> Digest:
    """Return a hand-built digest for `channel` and `week` with papers `arxiv_ids` (and a classic seed id)."""
    items = tuple(
        DigestItem(
            paper=Paper(title=f"Paper {a}", abstract="An abstract.", arxiv_id=a, version=1, origin="arxiv",
                        authors=("A. Author",), announced="2026-11-24"),
            themes=("rlhf",), score=0.5, why=("A seed paper",),
        )
        for a in arxiv_ids
    )
    classic = None
    if classic_id is not None:
        classic = Classic(paper=Paper(title="A classic", origin="seed", id=classic_id))
    return Digest(
        id=f"{channel}|{week}", channel=channel, week=week, title="RLHF papers: week of Nov 23", themes=("rlhf",),
        items=items, coverage=Coverage("ok", "Scanned 1,204 cs.CL/cs.LG papers from arXiv, Nov 16-22."),
        generated_at="2026-11-23T09:00:00+00:00", classic=classic,
    )


def builder(arxiv_ids: tuple[str, ...] = ("2611.00001", "2611.00002"), classic_id: int | None = None):
    """Return a `build(core, key, now)` making `make_digest` digests for the ISO week of `now`."""

    def build(core: Any, key: str, now: datetime) -> Digest:
        year, week, _ = now.isocalendar()
        return make_digest(key, f"{year}-W{week:02d}", arxiv_ids, classic_id)

    return build


def add_channel(core: Any, key: str, *, weekday: int = 0, time_: str = "09:00", tz: str = "UTC",
                themes: tuple[str, ...] = ("rlhf",), created_at: str = "2026-11-01T00:00:00+00:00",
                broken_reason: str | None = None) -> None:
    """Insert a channel row the way E1's channels module stores it (with a chosen created_at)."""
    core.db["channels"].insert(
        {"key": key, "themes_json": json.dumps(list(themes)), "weekday": weekday, "time": time_, "tz": tz,
         "broken_reason": broken_reason, "source": "cli", "created_at": created_at, "modified_at": created_at}
    )


@dataclass
class FakePlatform:
    """A rate-limited chat API on loopback; use `async with FakePlatform() as fake:`."""

    global_rate: int = 50
    channel_interval: float = 1.0
    gone: set[str] = field(default_factory=set)
    messages: list[tuple[str, str, float]] = field(default_factory=list)
    """(channel, digest id, accepted at) for every message accepted."""
    requests: int = 0
    limited: int = 0
    url: str = ""

    def __post_init__(self) -> None:
        self._window: collections.deque[float] = collections.deque()
        self._last: dict[str, float] = {}
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakePlatform:
        app = web.Application()
        app.router.add_post("/post", self._post)
        app.router.add_get("/find", self._find)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _too_fast(self, now: float) -> float | None:
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        if len(self._window) >= self.global_rate:
            return self._window[0] + 1.0 - now
        return None

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        now = time.monotonic()
        self.requests += 1
        channel = body["channel"]
        wait = self._too_fast(now)
        scope = "global"
        if wait is None and now - self._last.get(channel, -math.inf) < self.channel_interval:
            wait, scope = self._last[channel] + self.channel_interval - now, "channel"
        if wait is not None:
            self.limited += 1
            return web.json_response({"ok": False, "error": "ratelimited", "scope": scope}, status=429,
                                     headers={"Retry-After": f"{max(wait, 0.001):.3f}"})
        self._window.append(now)
        if channel in self.gone:
            return web.json_response({"ok": False, "error": "channel_not_found"}, status=404)
        self._last[channel] = now
        self.messages.append((channel, body["digest_id"], now))
        return web.json_response({"ok": True, "ts": f"{len(self.messages)}"})

    async def _find(self, request: web.Request) -> web.Response:
        channel, digest_id = request.query["channel"], request.query["digest_id"]
        for ch, did, _ in self.messages:
            if ch == channel and did == digest_id:
                return web.json_response({"ok": True, "ts": f"{ch}:{did}"})
        return web.json_response({"ok": True, "ts": None})

    def duplicates(self) -> int:
        """Return how many messages repeat a (channel, digest id) already accepted."""
        return len(self.messages) - len({(c, d) for c, d, _ in self.messages})


class HTTPPoster:
    """Posts a digest as one JSON message to a FakePlatform (the deliverer paces it)."""

    def __init__(self, url: str, session: aiohttp.ClientSession, platform: str = "slack") -> None:
        self.url = url
        self.session = session
        self.platform = platform

    async def post(self, channel_key: str, digest: Digest) -> str:
        """POST the digest's title and paper ids; map 429/404 to DeliveryError."""
        body = {"channel": channel_key, "digest_id": digest.id, "title": digest.title,
                "papers": [i.paper.arxiv_id for i in digest.items]}
        async with self.session.post(f"{self.url}/post", json=body) as resp:
            data = await resp.json()
            if resp.status == 429:
                code = "global_rate_limited" if data.get("scope") == "global" else "ratelimited"
                raise rate_limited(channel_key, float(resp.headers["Retry-After"]), code)
            if not data.get("ok"):
                raise permanent_failure(channel_key, data.get("error", f"http_{resp.status}"))
            return f"{channel_key}@{data['ts']}"

    async def find_posted(self, channel_key: str, digest_id: str) -> str | None:
        """Ask the platform whether `digest_id` is already in the channel."""
        params = {"channel": channel_key, "digest_id": digest_id}
        async with self.session.get(f"{self.url}/find", params=params) as resp:
            return (await resp.json()).get("ts")

