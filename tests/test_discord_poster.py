"""DiscordPoster against the loopback fake Discord REST API, with the real 429/403 bodies from realdata."""

from __future__ import annotations

import json

import pytest
from discord_fakes import (
    FakeDiscordAPI,
    FakeResponse,
    load_http_fixture,
    load_json_fixture,
)

from bot.discord_poster import (
    DISCORD_NONCE_MAX,
    DiscordPoster,
    digest_mark,
    digest_nonce,
    make_discord_poster,
    part_mark,
    validate_message,
)
from digests.errors import ConfigError, DeliveryError

CHANNEL = "discord:1380488052169769110:1380488052169769113"
CHANNEL_ID = "1380488052169769113"
DIGEST_ID = f"{CHANNEL}|2026-W48"


class FakeClock:
    """Monotonic time that moves only when the poster sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def message(title: str = "Weekly digest", description: str = "Two new papers") -> dict:
    return {
        "content": "**RLHF digest**",
        "embeds": [{"title": title, "description": description}],
    }


@pytest.fixture
async def api():
    async with FakeDiscordAPI() as fake:
        yield fake


@pytest.fixture
async def poster(api):
    clock = FakeClock()
    poster = DiscordPoster("good-token", api.base_url, sleep=clock.sleep, clock=clock)
    poster.test_clock = clock
    yield poster
    await poster.aclose()


def posts(api, channel_id=CHANNEL_ID):
    return api.calls("POST", rf"/channels/{channel_id}/messages")


async def test_post_sends_nonce_enforce_nonce_and_no_mentions(api, poster):
    ref = await poster.post_rendered(CHANNEL, DIGEST_ID, [message(), message("Part 2")])
    bodies = [r.body for r in posts(api)]
    assert ref == api.messages[CHANNEL_ID][0]["id"]
    assert [b["allowed_mentions"] for b in bodies] == [{"parse": []}, {"parse": []}]
    assert [b["enforce_nonce"] for b in bodies] == [True, True]
    assert (
        bodies[0]["nonce"]
        == digest_nonce(DIGEST_ID, 0)
        != bodies[1]["nonce"]
        == digest_nonce(DIGEST_ID, 1)
    )
    assert all(len(b["nonce"]) <= DISCORD_NONCE_MAX for b in bodies)
    assert bodies[0]["embeds"][-1]["footer"]["text"] == part_mark(DIGEST_ID, 0, 2)
    assert bodies[1]["embeds"][-1]["footer"]["text"] == f"{digest_mark(DIGEST_ID)} 2/2"
    assert posts(api)[0].headers["Authorization"] == "Bot good-token"


async def test_post_mark_appends_to_existing_footer(api, poster):
    rendered = {
        "content": "",
        "embeds": [{"title": "t", "footer": {"text": "Scanned 1,204 papers"}}],
    }
    await poster.post_rendered(CHANNEL, DIGEST_ID, [rendered])
    assert (
        posts(api)[0].body["embeds"][0]["footer"]["text"]
        == f"Scanned 1,204 papers \u00b7 {part_mark(DIGEST_ID, 0, 1)}"
    )


async def test_post_twice_same_digest_creates_one_message(api, poster):
    first = await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    again = await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert first == again
    assert len(api.messages[CHANNEL_ID]) == 1
    assert len(posts(api)) == 2


async def test_find_posted_finds_main_message_by_footer_mark(api, poster):
    ref = await poster.post_rendered(CHANNEL, DIGEST_ID, [message(), message("Part 2")])
    assert await poster.find_posted(CHANNEL, DIGEST_ID) == ref
    assert await poster.find_posted(CHANNEL, f"{CHANNEL}|2026-W47") is None
    assert api.calls("GET", rf"/channels/{CHANNEL_ID}/messages")[0].query == {
        "limit": "50"
    }


async def test_find_posted_ignores_messages_from_people(api, poster):
    api.messages[CHANNEL_ID] = [
        {
            "id": "1",
            "author": {"id": "2", "bot": False},
            "embeds": [{"footer": {"text": digest_mark(DIGEST_ID)}}],
        }
    ]
    assert await poster.find_posted(CHANNEL, DIGEST_ID) is None


async def test_short_429_is_retried_after_its_retry_after(api, poster):
    api.script(
        CHANNEL_ID, load_json_fixture("discord_real_429_user_rate_limit_2026.json", 429)
    )
    ref = await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert ref == api.messages[CHANNEL_ID][0]["id"]
    assert poster.test_clock.sleeps == [pytest.approx(0.3)]
    assert len(posts(api)) == 2
    assert poster.invalid.count == 1


async def test_long_429_goes_back_to_ledger_without_retrying(api, poster):
    api.script(CHANNEL_ID, load_http_fixture("discord_docs_429_user_rate_limit.http"))
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert (info.value.code, info.value.retry_after, info.value.permanent) == (
        429,
        64.57,
        False,
    )
    assert len(posts(api)) == 1
    assert poster.test_clock.sleeps == []


async def test_global_429_pauses_every_channel_without_requests(api, poster):
    api.script(CHANNEL_ID, load_http_fixture("discord_docs_429_global_rate_limit.http"))
    with pytest.raises(DeliveryError) as first:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(
            "discord:1:222", "discord:1:222|2026-W48", [message()]
        )
    from bot.deliver import (
        GLOBAL_LIMIT_CODES,
    )  # the codes the ledger pauses every channel on

    assert first.value.code == info.value.code and info.value.code in GLOBAL_LIMIT_CODES
    assert info.value.retry_after == pytest.approx(64.57)
    assert len(api.requests) == 1


async def test_shared_scope_429_does_not_count_as_invalid(api, poster):
    api.script(
        CHANNEL_ID,
        load_http_fixture("discord_docs_429_shared_resource_rate_limit.http"),
    )
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert info.value.retry_after == pytest.approx(1336.57)
    assert poster.invalid.count == 0


async def test_repeated_429_is_bounded(api, poster):
    short = load_json_fixture("discord_real_429_user_rate_limit_2026.json", 429)
    api.script(CHANNEL_ID, short, short, short, short)
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert info.value.code == 429
    assert len(posts(api)) == 3


async def test_legacy_millisecond_429_is_not_retried_inline(api, poster):
    api.script(
        CHANNEL_ID, load_json_fixture("discord_real_429_legacy_2020_body.json", 429)
    )
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert info.value.retry_after == 8605 and len(posts(api)) == 1


async def test_service_resource_429_code_40062(api, poster):
    api.script(
        CHANNEL_ID,
        load_json_fixture("discord_real_429_code40062_service_resource_2022.json", 429),
    )
    ref = await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert ref and poster.test_clock.sleeps == [3.0]


@pytest.mark.parametrize(
    ("fixture", "status", "code"),
    [
        ("discord_real_403_50001_missing_access_body.json", 403, 50001),
        ("discord_real_403_50001_missing_access_body_compact.json", 403, 50001),
        ("discord_real_403_50013_missing_permissions_body.json", 403, 50013),
    ],
)
async def test_forbidden_is_permanent_with_code(api, poster, fixture, status, code):
    api.script(CHANNEL_ID, load_json_fixture(fixture, status))
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert (info.value.permanent, info.value.code, info.value.channel) == (
        True,
        code,
        CHANNEL,
    )
    assert len(posts(api)) == 1
    assert poster.invalid.count == 1


async def test_unknown_channel_is_permanent(api, poster):
    # Body as Discord sends it for code 10003 ("Unknown channel" in discord_docs_json_error_codes.tsv).
    api.script(
        CHANNEL_ID, FakeResponse(404, {"message": "Unknown Channel", "code": 10003})
    )
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert (info.value.permanent, info.value.code) == (True, 10003)
    assert "no longer exists" in str(info.value)


async def test_bad_token_stops_all_further_requests(api):
    poster = DiscordPoster("wrong-token", api.base_url)
    api.script(
        CHANNEL_ID, load_json_fixture("discord_docs_error_json_example_50014.json", 401)
    )
    with pytest.raises(DeliveryError) as first:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    with pytest.raises(DeliveryError) as second:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    await poster.aclose()
    assert "DISCORD_TOKEN" in str(first.value) and "wrong-token" not in str(first.value)
    assert second.value.code == 401 and len(api.requests) == 1


async def test_invalid_request_budget_stops_sending(api, poster):
    poster.invalid.budget = 3
    api.broken[CHANNEL_ID] = load_json_fixture(
        "discord_real_403_50013_missing_permissions_body.json", 403
    )
    for _ in range(3):
        with pytest.raises(DeliveryError):
            await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(
            "discord:1:222", "discord:1:222|2026-W48", [message()]
        )
    assert info.value.code == "invalid_request_budget" and info.value.retry_after > 0
    assert len(api.requests) == 3


async def test_server_errors_retried_then_given_up(api, poster):
    api.script(CHANNEL_ID, FakeResponse(502, "bad gateway"), FakeResponse(500, None))
    assert await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert poster.test_clock.sleeps == [1.0, 2.0]
    api.script("222", *[FakeResponse(503, None)] * 3)
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(
            "discord:1:222", "discord:1:222|2026-W48", [message()]
        )
    assert info.value.code == 503 and info.value.permanent is False
    assert len(posts(api, "222")) == 3


async def test_over_limit_message_is_refused_before_any_request(api, poster):
    too_long = message(description="x" * 4000)
    too_long["embeds"].append({"title": "y", "description": "z" * 2000})
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [too_long])
    assert info.value.code == "invalid_embed" and api.requests == []


@pytest.mark.parametrize(
    ("msg", "ok"),
    [
        ({"content": "x" * 2000, "embeds": []}, True),
        ({"content": "x" * 2001, "embeds": []}, False),
        (
            {
                "embeds": [
                    {
                        "title": "t" * 256,
                        "description": "d" * 4096,
                        "footer": {"text": "f" * 1648},
                    }
                ]
            },
            True,
        ),
        (
            {
                "embeds": [
                    {
                        "title": "t" * 256,
                        "description": "d" * 4096,
                        "footer": {"text": "f" * 1649},
                    }
                ]
            },
            False,
        ),
        ({"embeds": [{"title": "t" * 257}]}, False),
        ({"embeds": [{"title": "\u00e9\u6f22" * 128}]}, True),
        ({"embeds": [{"title": "t"}] * 11}, False),
    ],
)
def test_validate_message_limits(msg, ok):
    if ok:
        validate_message(msg)
    else:
        with pytest.raises(ValueError):
            validate_message(msg)


def test_mark_skipped_when_it_would_break_the_limit():
    from bot.discord_poster import add_mark

    full = {
        "embeds": [
            {
                "title": "t" * 256,
                "description": "d" * 4096,
                "footer": {"text": "f" * 1648},
            }
        ]
    }
    assert add_mark(full, digest_mark(DIGEST_ID)) is full


def test_bad_channel_key_is_permanent():
    from bot.discord_poster import channel_id_from_key

    with pytest.raises(DeliveryError) as info:
        channel_id_from_key("slack:T1:C1")
    assert info.value.permanent is True


def test_make_poster_without_token_names_the_variable(fresh_core):
    with pytest.raises(ConfigError) as info:
        make_discord_poster(fresh_core)
    assert "DISCORD_TOKEN" in str(info.value)


def big_digest(n_items: int = 14):
    from digests.models import Coverage, Digest, DigestItem, Paper

    items = tuple(
        DigestItem(
            Paper(
                title=f"Paper {i} about **reward** models @everyone " + "\u6f22" * 200,
                abstract="word " * 12_000,
                authors=("A. Author", "B. Writer", "C. Third", "D. Fourth"),
                arxiv_id=f"2611.{i:05d}",
                version=1,
            ),
            themes=("rlhf",),
            score=0.9,
            why=(
                "Training language models to follow instructions with human feedback",
            ),
        )
        for i in range(n_items)
    )
    coverage = Coverage("ok", "Scanned 1,204 cs.CL/cs.LG papers from arXiv, Nov 16-22.")
    return Digest(
        id=DIGEST_ID,
        channel=CHANNEL,
        week="2026-W48",
        title="RLHF digest, week of Nov 23",
        themes=("rlhf",),
        items=items,
        coverage=coverage,
        generated_at="2026-11-25T12:00:00+00:00",
    )


async def test_post_digest_renders_within_limits_with_follow_ups(api):
    paced: list[str] = []

    async def pace(channel_key: str) -> None:
        paced.append(channel_key)

    poster = DiscordPoster("good-token", api.base_url, pace=pace)
    digest = big_digest()
    ref = await poster.post(CHANNEL, digest)
    found = await poster.find_posted(CHANNEL, digest.id)
    await poster.aclose()
    bodies = [r.body for r in posts(api)]
    assert len(bodies) >= 2 and paced == [CHANNEL] * (len(bodies) - 1)
    assert ref == found == api.messages[CHANNEL_ID][0]["id"]
    for body in bodies:
        validate_message(body)
        assert (
            body["allowed_mentions"] == {"parse": []} and body["enforce_nonce"] is True
        )
        assert "@everyone" not in json.dumps(body, ensure_ascii=False)
    assert len({b["nonce"] for b in bodies}) == len(bodies)
    assert "Scanned 1,204" in bodies[0]["embeds"][-1]["footer"]["text"]


async def test_make_poster_uses_settings_and_the_delivery_pacer(api, fresh_core):
    import dataclasses

    settings = dataclasses.replace(
        fresh_core.settings, discord_token="good-token", discord_api_url=api.base_url
    )
    poster = make_discord_poster(dataclasses.replace(fresh_core, settings=settings))
    from bot.posting import Poster

    assert (
        isinstance(poster, Poster)
        and poster.platform == "discord"
        and poster.pace is not None
    )
    assert await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    await poster.aclose()


async def test_find_posted_when_history_is_refused_leaves_it_to_the_post(api, poster):
    api.broken[CHANNEL_ID] = load_json_fixture(
        "discord_real_403_50001_missing_access_body.json", 403
    )
    assert await poster.find_posted(CHANNEL, DIGEST_ID) is None
    with pytest.raises(DeliveryError) as info:
        await poster.post_rendered(CHANNEL, DIGEST_ID, [message()])
    assert info.value.permanent is True


# -- with E2's Deliverer and the real digest build: scheduled digests reach Discord as embeds --------


async def test_deliverer_posts_digest_once_and_marks_refusing_channel_broken(
    api, fresh_core, fixed_now
):
    from bot.deliver import Deliverer, catalog_lane
    from digests import channels

    gone = "discord:1380488052169769110:222"
    for key in (CHANNEL, gone):
        channels.subscribe(fresh_core, key, [fresh_core.theme_names[0]])
    api.broken["222"] = load_json_fixture(
        "discord_real_403_50013_missing_permissions_body.json", 403
    )
    poster = DiscordPoster("good-token", api.base_url)
    deliverer = Deliverer(fresh_core, posters=lambda platform: poster)
    first = await deliverer.deliver(CHANNEL, fixed_now)
    again = await deliverer.deliver(CHANNEL, fixed_now)
    refused = await deliverer.deliver(gone, fixed_now)
    await poster.aclose()
    catalog_lane(fresh_core).close()
    assert (first.outcome, again.outcome, refused.outcome) == (
        "posted",
        "already",
        "broken",
    )
    assert (
        first.ref == api.messages[CHANNEL_ID][0]["id"]
        and len(api.messages[CHANNEL_ID]) >= 1
    )
    main = posts(api)[0].body
    validate_message(main)
    assert (
        main["embeds"]
        and digest_mark(first.digest_id) in main["embeds"][-1]["footer"]["text"]
    )
    # The stored reason is the poster's sentence (it names the code and the fix).
    assert "50013" in channels.get_channel(fresh_core, gone).broken_reason


async def test_deliverer_recovers_a_post_whose_ref_was_lost(api, fresh_core, fixed_now):
    from bot.deliver import Deliverer, catalog_lane
    from digests import channels, ledger
    from digests.build import build_digest

    channels.subscribe(fresh_core, CHANNEL, [fresh_core.theme_names[0]])
    poster = DiscordPoster("good-token", api.base_url)
    digest = build_digest(fresh_core, CHANNEL, fixed_now)
    ref = await poster.post(CHANNEL, digest)  # the post landed ...
    ledger.begin(fresh_core, digest, fixed_now)
    ledger.record_attempt(
        fresh_core, digest.id
    )  # ... and the process died before recording the ref
    result = await Deliverer(fresh_core, posters=lambda platform: poster).deliver(
        CHANNEL, fixed_now
    )
    await poster.aclose()
    catalog_lane(fresh_core).close()
    assert (result.outcome, result.ref) == ("recovered", ref)
    assert len(posts(api)) == len(
        api.messages[CHANNEL_ID]
    )  # nothing posted a second time


async def test_retry_after_a_failed_follow_up_sends_only_the_missing_part(api, poster):
    parts = [message(), message("Part 2"), message("Part 3")]
    api.script(
        CHANNEL_ID, None, *[FakeResponse(503, None)] * 3
    )  # part 2 meets a failing server
    with pytest.raises(DeliveryError):
        await poster.post_rendered(CHANNEL, DIGEST_ID, parts)
    ref = await poster.post_rendered(CHANNEL, DIGEST_ID, parts)
    titles = [m["embeds"][0]["title"] for m in api.messages[CHANNEL_ID]]
    assert titles == ["Weekly digest", "Part 2", "Part 3"]
    assert ref == api.messages[CHANNEL_ID][0]["id"] and poster.resume == {}


async def test_crash_between_parts_is_completed_after_find_posted(api):
    parts = [message(), message("Part 2")]
    crashed = DiscordPoster("good-token", api.base_url)
    await crashed.post_rendered(CHANNEL, DIGEST_ID, parts)
    api.messages[CHANNEL_ID].pop()  # as if the process died before part 2 went out
    await crashed.aclose()
    restarted = DiscordPoster("good-token", api.base_url)
    assert await restarted.find_posted(CHANNEL, DIGEST_ID) is None
    ref = await restarted.post_rendered(CHANNEL, DIGEST_ID, parts)
    assert await restarted.find_posted(CHANNEL, DIGEST_ID) == ref
    await restarted.aclose()
    assert [m["embeds"][0]["title"] for m in api.messages[CHANNEL_ID]] == [
        "Weekly digest",
        "Part 2",
    ]
    assert ref == api.messages[CHANNEL_ID][0]["id"]
