"""The ledger + deliverer driving the real DiscordPoster (from the poster registry) against H's loopback Discord API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.deliver import Deliverer, catalog_lane
from bot.posting import RateLimiter, SimulatedCrash
from digests import ledger
from tests.discord_fakes import FakeDiscordAPI
from tests.fake_platform import add_channel, builder

CHANNEL_ID = "1300000000000000001"
KEY = f"discord:1200000000000000001:{CHANNEL_ID}"
DUE = datetime(2026, 11, 23, 9, tzinfo=UTC)


@pytest.fixture
async def discord_api():
    async with FakeDiscordAPI() as fake:
        yield fake


@pytest.fixture
def core(discord_api, monkeypatch, fixed_now):
    from digests.service import open_core
    from digests.settings import load_settings

    monkeypatch.setenv("DISCORD_TOKEN", "good-token")
    monkeypatch.setenv("DIGESTBOT_DISCORD_API_URL", discord_api.base_url)
    core = open_core(load_settings(), clock=lambda: fixed_now, sync=False)
    add_channel(core, KEY)
    core.cache["rate_limiters"] = {"discord": RateLimiter(None, 0.0)}
    yield core
    catalog_lane(core).close()


async def test_crash_after_discord_accepted_the_post_does_not_duplicate(core, discord_api):
    def crash_after_post(point):
        if point == "posted":
            raise SimulatedCrash(point)

    with pytest.raises(SimulatedCrash):
        await Deliverer(core, build=builder(), checkpoint=crash_after_post).deliver(KEY, DUE)
    first_count = len(discord_api.messages.get(CHANNEL_ID, []))
    assert first_count >= 1

    results = await Deliverer(core, build=builder()).catch_up()
    assert [r.outcome for r in results] in (["recovered"], ["posted"])
    assert len(discord_api.messages[CHANNEL_ID]) == first_count  # found, or deduplicated by the nonce
    assert ledger.get_delivery(core, f"{KEY}|2026-W48").status == "done"
    assert await Deliverer(core, build=builder()).catch_up() == []
