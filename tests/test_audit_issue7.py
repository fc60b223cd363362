"""Audit of issue 7 (Discord bot): the requirements the earlier Discord tests did not pin down.

Real discord.Interaction objects from the realdata payloads go through the generated CommandTree; the
interaction callbacks, followups and digest posts land on the loopback fake Discord API (tests/discord_fakes.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from datetime import timedelta

import discord
import pytest
from discord_fakes import (
    APP_ID,
    REALDATA,
    FakeDiscordAPI,
    FakeResponse,
    load_json_fixture,
)
from test_discord_app import (
    EPHEMERAL,
    MEMBER_ONLY,
    REAL_BODY,
    assert_valid_message,
    autocomplete_payload,
    callbacks,
    close_shared_lanes,
    dispatch,
    followups,
    slash_payload,
)

from bot.commands import COMMANDS, digest_subcommands
from bot.discord_app import DISCORD_DESCRIPTION_MAX, build_discord_client, login
from bot.discord_poster import DiscordPoster, make_discord_poster, validate_message
from digests import catalog, channels
from digests.settings import load_settings

KEY = "discord:1380488052169769110:1380488052169769113"
"""The channel of the real 2025-06 slash-command payload."""
CHANNEL_ID = "1380488052169769113"
CALLBACK = r"/interactions/\d+/[^/]+/callback"
FOLLOWUP = rf"/webhooks/{APP_ID}/[^/]+"
ARXIV_ID = "1207.7214"
"""In realdata (arxiv_api_2026_idlist_1207.7214.xml) and not among the seed papers."""


@pytest.fixture
async def api():
    original = discord.http.Route.BASE
    async with FakeDiscordAPI() as fake:
        yield fake
    discord.http.Route.BASE = original


def core_for(api, fresh_core, **settings):
    """Return fresh_core talking to the fake Discord API (and, for /paper lookups, the fake's arXiv route)."""
    changed = dataclasses.replace(
        fresh_core.settings,
        discord_api_url=api.base_url,
        arxiv_api_url=f"{api.base_url}/arxiv/query",
        **settings,
    )
    return dataclasses.replace(fresh_core, settings=changed)


@pytest.fixture
async def client(api, fresh_core):
    bot = build_discord_client(core_for(api, fresh_core))
    bot.sync_on_start = False
    await login(bot, "good-token")
    yield bot
    await bot.close()
    close_shared_lanes(bot.core)


def texts(api) -> list[str]:
    return [json.dumps(body, ensure_ascii=False) for body in followups(api)]


# -- lanes: SQLite writes and arXiv requests one at a time across the process (E2's bot.deliver lanes) -----------


async def test_commands_wait_for_the_process_wide_catalog_lane(api, client):
    from bot.deliver import catalog_lane

    release = threading.Event()
    held = asyncio.ensure_future(
        catalog_lane(client.core).run(lambda core: release.wait())
    )
    command = asyncio.ensure_future(
        dispatch(
            client,
            slash_payload(REAL_BODY, "paper", None, {"query": "constitutional ai"}),
        )
    )
    await api.wait_for("POST", CALLBACK)  # deferred at once ...
    assert (
        followups(api) == []
    )  # ... but the catalog work queues behind the ledger's lane
    release.set()
    await asyncio.gather(held, command)
    [body] = followups(api)
    assert_valid_message(body)


async def test_arxiv_lookup_uses_the_arxiv_lane_and_never_holds_up_catalog_answers(
    api, client
):
    from bot.deliver import arxiv_lane

    assert catalog.get_by_arxiv_id(client.core, ARXIV_ID) is None
    xml = (
        (REALDATA / f"arxiv_api_2026_idlist_{ARXIV_ID}.xml")
        .read_bytes()
        .decode("utf-8")
    )
    api.static["/arxiv/query"] = FakeResponse(
        200, xml, {"Content-Type": "application/atom+xml"}
    )
    release = threading.Event()
    held = asyncio.ensure_future(
        arxiv_lane(client.core).run(lambda core: release.wait())
    )
    lookup = asyncio.ensure_future(
        dispatch(client, slash_payload(REAL_BODY, "paper", None, {"query": ARXIV_ID}))
    )
    await dispatch(
        client, slash_payload(REAL_BODY, "paper", None, {"query": "constitutional ai"})
    )
    assert len(followups(api)) == 1 and ARXIV_ID not in texts(api)[0]
    assert not api.calls(
        "GET", "/arxiv/query"
    )  # the lookup is still queued on the held arXiv lane
    release.set()
    await asyncio.gather(held, lookup)
    assert len(api.calls("GET", "/arxiv/query")) == 1
    answer = texts(api)[1]
    assert ARXIV_ID in answer and "Higgs" in answer
    assert_valid_message(followups(api)[1])


# -- every /digest subcommand through the tree: visibility and limits ---------------------------------------


@pytest.mark.parametrize(
    ("sub", "options", "public"),
    [
        ("unsubscribe", {}, True),
        ("topics", {}, False),
        ("preview", {}, False),
        ("status", {}, False),
        ("help", {}, False),
        ("schedule", {"day": "mon", "time": "09:00"}, True),
    ],
)
async def test_each_digest_subcommand_answers_within_limits(
    api, client, sub, options, public
):
    theme = client.core.theme_names[0]
    channels.subscribe(client.core, KEY, [theme])
    await dispatch(client, slash_payload(REAL_BODY, "digest", sub, options))
    [callback] = callbacks(api)
    assert (
        callback["type"] == 5
    )  # deferred: the work runs on a lane, maybe longer than a second
    assert bool(callback.get("data", {}).get("flags", 0) & EPHEMERAL) is not public
    [body] = followups(api)
    assert_valid_message(body)
    assert bool(body.get("flags", 0) & EPHEMERAL) is not public
    assert body.get("content") or body.get("embeds")


async def test_topics_lists_every_theme(api, client):
    await dispatch(client, slash_payload(REAL_BODY, "digest", "topics", {}))
    text = texts(api)[0]
    assert all(name in text for name in client.core.theme_names)


@pytest.mark.parametrize(
    "entry", [c for c in COMMANDS if c.changes_subscription], ids=lambda c: c.sub
)
async def test_every_change_is_refused_without_manage_channels(api, client, entry):
    options = {
        o.name: {"day": "mon", "time": "09:00"}.get(o.kind, client.core.theme_names[0])
        for o in entry.options
        if o.required
    }
    channels.subscribe(client.core, KEY, [client.core.theme_names[0]])
    before = channels.get_channel(client.core, KEY)
    await dispatch(
        client,
        slash_payload(REAL_BODY, "digest", entry.sub, options, perms=MEMBER_ONLY),
    )
    [callback] = callbacks(api)
    assert callback["type"] == 4 and callback["data"]["flags"] == EPHEMERAL
    assert "Manage Channels" in callback["data"]["content"]
    assert followups(api) == [] and channels.get_channel(client.core, KEY) == before


# -- autocomplete: theme names and time zones ---------------------------------------------------------------


@pytest.mark.parametrize("sub", ["subscribe", "unsubscribe"])
async def test_theme_autocomplete_offers_theme_names(api, client, sub):
    theme = client.core.theme_names[0]
    await dispatch(client, autocomplete_payload("digest", sub, "theme", theme[:2]))
    [callback] = callbacks(api)
    values = [c["value"] for c in callback["data"]["choices"]]
    assert callback["type"] == 8 and 1 <= len(values) <= 25
    assert any(v.split()[-1] == theme for v in values)


async def test_empty_tz_autocomplete_is_capped_at_25_iana_names(api, client):
    from zoneinfo import available_timezones

    await dispatch(client, autocomplete_payload("digest", "schedule", "tz", ""))
    choices = callbacks(api)[0]["data"]["choices"]
    assert (
        1 <= len(choices) <= 25
        and {c["value"] for c in choices} <= available_timezones()
    )


# -- DIGESTBOT_DISCORD_API_URL reaches discord.py's HTTP client and the poster -------------------------------


async def test_api_url_from_the_environment_drives_discordpy_and_the_poster(
    api, fresh_core, monkeypatch
):
    monkeypatch.setenv("DIGESTBOT_DISCORD_API_URL", api.base_url)
    monkeypatch.setenv("DISCORD_TOKEN", "good-token")
    settings = load_settings()
    assert settings.discord_api_url == api.base_url
    core = dataclasses.replace(fresh_core, settings=settings)
    bot = build_discord_client(core)
    bot.sync_on_start = False
    await login(bot, settings.discord_token)
    await bot.close()
    poster = make_discord_poster(core)
    await poster.post_rendered(
        KEY, f"{KEY}|2026-W48", [{"content": "hello", "embeds": []}]
    )
    await poster.aclose()
    assert api.calls("GET", "/users/@me") and len(api.messages[CHANNEL_ID]) == 1


# -- the commands Discord registers are the command table ---------------------------------------------------


async def test_registered_commands_are_the_command_table(api, fresh_core):
    bot = build_discord_client(core_for(api, fresh_core))
    await login(bot, "good-token")  # setup_hook syncs globally (no DISCORD_GUILD_ID)
    await bot.close()
    close_shared_lanes(bot.core)
    [put] = api.calls("PUT", rf"/applications/{APP_ID}/commands")
    registered = {c["name"]: c for c in put.body}
    for entry in COMMANDS:
        top = registered[entry.name]
        node = (
            top
            if entry.sub is None
            else next(o for o in top["options"] if o["name"] == entry.sub)
        )
        options = {o["name"]: o for o in node.get("options", [])}
        assert {n: o.get("required", False) for n, o in options.items()} == {
            o.name: o.required for o in entry.options
        }
        assert 1 <= len(node["description"]) <= DISCORD_DESCRIPTION_MAX
        for option in entry.options:
            sent = options[option.name]
            assert (
                sent["type"] == 3
                and 1 <= len(sent["description"]) <= DISCORD_DESCRIPTION_MAX
            )
            assert sent.get("autocomplete", False) is (
                option.kind in ("query", "theme", "tz")
            )
            assert len(sent.get("choices", [])) == (7 if option.kind == "day" else 0)
    assert [o["name"] for o in registered["digest"]["options"]] == list(
        digest_subcommands()
    )
    assert registered["digest"]["contexts"] == [
        0
    ]  # guild only: a DM has no channel subscription
    assert registered["paper"].get("default_member_permissions") is None


# -- scheduled digests from real arXiv papers arrive as valid embeds; preview shows the same -----------------


def add_real_papers(core, now, theme: str) -> int:
    """Upsert the 50 real cs.AI/cs.LG papers of the realdata search reply as announced yesterday, matched."""
    from digests.arxiv_feed import parse_atom
    from digests.fetch import record_run
    from digests.models import FetchRun, ThemeScore

    page = parse_atom(
        (
            REALDATA / "arxiv_api_2026_search_cat-cs.AI_OR_cat-cs.LG_max50.xml"
        ).read_bytes()
    )
    seen = now - timedelta(days=1)
    result = catalog.upsert_arxiv_papers(core, list(page.papers), seen)
    for i, paper in enumerate(result.new):
        catalog.store_scores(
            core,
            paper.id,
            [ThemeScore(theme, 0.9 - i / 100, True, why=("a seed paper",))],
        )
    started = seen.isoformat()
    record_run(
        core,
        FetchRun(
            id=None,
            started=started,
            finished=started,
            window_start=(seen - timedelta(days=7)).isoformat(),
            window_end=started,
            outcome="ok",
            scanned={"cs.AI": 50},
        ),
    )
    return len(result.new)


async def test_preview_and_scheduled_post_of_real_papers_fit_discord(
    api, client, fixed_now
):
    from bot.deliver import Deliverer

    theme = client.core.theme_names[0]
    channels.subscribe(client.core, KEY, [theme])
    assert add_real_papers(client.core, fixed_now, theme) == 50
    await dispatch(client, slash_payload(REAL_BODY, "digest", "preview", {}))
    [preview] = followups(api)
    assert_valid_message(preview)
    assert preview["flags"] & EPHEMERAL
    poster = DiscordPoster("good-token", api.base_url)
    result = await Deliverer(client.core, posters=lambda platform: poster).deliver(
        KEY, fixed_now
    )
    await poster.aclose()
    assert result.outcome == "posted"
    posted = api.messages[CHANNEL_ID]
    assert posted and all(m["embeds"] for m in posted)
    for message in api.calls("POST", rf"/channels/{CHANNEL_ID}/messages"):
        validate_message(message.body)
        assert message.body["enforce_nonce"] is True and message.body[
            "allowed_mentions"
        ] == {"parse": []}
    shown = json.dumps(posted, ensure_ascii=False)
    # The posted digest shows real papers, linked by their arXiv ids.
    ids = [paper.arxiv_id for paper in catalog.list_papers(client.core, origin="arxiv")]
    assert any(arxiv_id in shown for arxiv_id in ids)


# -- a channel refused for good is marked broken with a reason people can read --------------------------------


REFUSALS = [
    ("discord_real_403_50001_missing_access_body.json", 403, "cannot see this channel"),
    ("discord_real_403_50013_missing_permissions_body.json", 403, "lacks a permission"),
    (None, 404, "no longer exists"),
]


@pytest.mark.parametrize(
    ("fixture", "status", "words"), REFUSALS, ids=["50001", "50013", "10003"]
)
async def test_refused_channel_is_broken_and_the_reason_names_the_fix(
    api, fresh_core, fixed_now, fixture, status, words
):
    from bot.deliver import Deliverer, catalog_lane

    core = core_for(api, fresh_core)
    channels.subscribe(core, KEY, [core.theme_names[0]])
    api.broken[CHANNEL_ID] = (
        load_json_fixture(fixture, status)
        if fixture
        else FakeResponse(404, {"message": "Unknown Channel", "code": 10003})
    )
    poster = DiscordPoster("good-token", api.base_url)
    first = await Deliverer(core, posters=lambda platform: poster).deliver(
        KEY, fixed_now
    )
    again = await Deliverer(core, posters=lambda platform: poster).deliver(
        KEY, fixed_now
    )
    await poster.aclose()
    catalog_lane(core).close()
    assert (first.outcome, again.outcome) == ("broken", "broken")
    assert words in first.detail
    # One refused post (plus at most one history read) and then nothing: never looping on an error.
    assert len(api.calls("POST", rf"/channels/{CHANNEL_ID}/messages")) == 1
    assert (
        words in channels.get_channel(core, KEY).broken_reason
    )  # what /digest status shows, in words


# -- `digestbot run` with DISCORD_TOKEN starts the bot ----------------------------------------------------------


async def runner_for(api, monkeypatch, fixed_now, token: str):
    from bot.runner import Platforms, Runner
    from digests.service import open_core

    monkeypatch.setenv("DISCORD_TOKEN", token)
    monkeypatch.setenv("DIGESTBOT_DISCORD_API_URL", api.base_url)
    core = open_core(load_settings(), clock=lambda: fixed_now, sync=False)
    runner = Runner(core, Platforms.from_settings(core.settings), say=lambda text: None)
    assert runner.platforms.discord and not runner.platforms.slack
    return runner


async def test_run_with_discord_token_logs_in_and_registers_the_commands(
    api, monkeypatch, fixed_now
):
    runner = await runner_for(api, monkeypatch, fixed_now, "good-token")
    await runner.start(fetch_if_due=False)
    try:
        [put] = await api.wait_for("PUT", rf"/applications/{APP_ID}/commands")
    finally:
        await runner.stop()
    assert sorted(c["name"] for c in put.body) == ["digest", "paper"]


async def test_run_with_a_refused_discord_token_stops_with_the_variable_named(
    api, monkeypatch, fixed_now
):
    from digests.errors import ConfigError

    runner = await runner_for(api, monkeypatch, fixed_now, "refused-token-value")
    await runner.start(fetch_if_due=False)
    try:
        with pytest.raises(ConfigError, match="DISCORD_TOKEN") as info:
            await runner.wait()
    finally:
        await runner.stop()
    assert "refused-token-value" not in str(info.value)


# -- per-route rate limits: the reset headers are honoured before Discord has to answer 429 ------------------


async def test_exhausted_route_bucket_waits_its_reset_after_and_only_for_that_channel(
    api,
):
    from test_discord_poster import FakeClock, message

    clock = FakeClock()
    poster = DiscordPoster("good-token", api.base_url, sleep=clock.sleep, clock=clock)
    last_in_bucket = FakeResponse(
        200,
        {"id": "1400000000000000001"},
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.75"},
    )
    api.script(CHANNEL_ID, last_in_bucket)
    await poster.post_rendered(KEY, f"{KEY}|2026-W47", [message()])
    await poster.post_rendered("discord:1:222", "discord:1:222|2026-W48", [message()])
    assert clock.sleeps == []  # another channel is another route
    await poster.post_rendered(KEY, f"{KEY}|2026-W48", [message()])
    await poster.aclose()
    assert clock.sleeps == [pytest.approx(0.75)]
    assert len(api.calls("POST", r"/channels/\d+/messages")) == 3


# -- /paper autocomplete keeps its answer while a word is being typed -------------------------------------------


async def test_paper_autocomplete_keeps_answering_letter_by_letter(api, client):
    word = "constitutional"
    for n in range(3, len(word) + 1):
        await dispatch(client, autocomplete_payload("paper", None, "query", word[:n]))
    answers = [len(body["data"]["choices"]) for body in callbacks(api)]
    assert all(answers), dict(zip((word[:n] for n in range(3, len(word) + 1)), answers))


def test_lane_for_sends_only_unknown_arxiv_ids_to_the_arxiv_lane(fresh_core, fixed_now):
    from bot.commands import find_command
    from bot.discord_app import lane_for
    from digests.arxiv_feed import parse_atom

    paper, status = find_command("paper"), find_command("digest", "status")
    url = f"https://arxiv.org/abs/{ARXIV_ID}v2"
    assert lane_for(fresh_core, paper, {"query": ARXIV_ID}) == "arxiv"
    assert lane_for(fresh_core, paper, {"query": url}) == "arxiv"
    xml = (REALDATA / f"arxiv_api_2026_idlist_{ARXIV_ID}.xml").read_bytes()
    catalog.upsert_arxiv_papers(fresh_core, list(parse_atom(xml).papers), fixed_now)
    assert (
        lane_for(fresh_core, paper, {"query": url}) == "catalog"
    )  # now answered from the catalog
    assert lane_for(fresh_core, paper, {"query": "constitutional ai"}) == "catalog"
    assert lane_for(fresh_core, status, {}) == "catalog"
