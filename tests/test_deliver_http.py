"""Delivery over real HTTP on loopback: a rate-limited fake platform answers 429 + Retry-After and 404s."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp

from bot.deliver import Deliverer, catalog_lane
from bot.posting import RateLimiter
from digests import ledger
from digests.channels import get_channel
from tests.fake_platform import FakePlatform, HTTPPoster, add_channel, builder

DUE = datetime(2026, 11, 23, 9, tzinfo=UTC)


async def test_fan_out_through_429s_loses_and_duplicates_nothing(fresh_core):
    keys = [f"slack:T1:C{i}" for i in range(12)]
    for key in keys:
        add_channel(fresh_core, key)
    add_channel(fresh_core, "slack:T1:GONE")
    # no client-side pacing at all, so the fake's global limit (6/s) must answer 429s
    fresh_core.cache["rate_limiters"] = {"slack": RateLimiter(None, 0.0)}
    async with FakePlatform(global_rate=6, gone={"slack:T1:GONE"}) as fake, aiohttp.ClientSession() as session:
        poster = HTTPPoster(fake.url, session)
        deliverer = Deliverer(fresh_core, posters=lambda p: poster, build=builder(), max_in_flight=16)
        results = {r.channel: r.outcome for r in await deliverer.catch_up()}
        catalog_lane(fresh_core).close()

    assert fake.limited > 0
    assert results == {**{k: "posted" for k in keys}, "slack:T1:GONE": "broken"}
    assert fake.duplicates() == 0
    assert sorted(c for c, _, _ in fake.messages) == sorted(keys)
    assert "(channel_not_found); check the channel" in get_channel(fresh_core, "slack:T1:GONE").broken_reason
    assert ledger.get_delivery(fresh_core, "slack:T1:C0|2026-W48").status == "done"


async def test_find_posted_over_http_recovers_lost_ref(fresh_core, fixed_now):
    add_channel(fresh_core, "slack:T1:C1")
    fresh_core.cache["rate_limiters"] = {"slack": RateLimiter(None, 0.0)}
    digest = builder()(fresh_core, "slack:T1:C1", DUE)
    async with FakePlatform() as fake, aiohttp.ClientSession() as session:
        poster = HTTPPoster(fake.url, session)
        await poster.post("slack:T1:C1", digest)  # the post landed ...
        ledger.begin(fresh_core, digest, fixed_now, count_attempt=True)  # ... but the process died before the ref
        results = await Deliverer(fresh_core, posters=lambda p: poster, build=builder()).catch_up()
        catalog_lane(fresh_core).close()
    assert [r.outcome for r in results] == ["recovered"]
    assert len(fake.messages) == 1 and fake.requests == 1
