"""The Discord adapter: real discord.Interaction objects built from the real payloads in realdata, dispatched
through the generated CommandTree, with the interaction callback and followups going to the loopback fake API."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import discord
import pytest
from discord_fakes import APP_ID, REALDATA, FakeDiscordAPI

from bot.commands import COMMANDS, DISCORD_REFUSAL, digest_subcommands
from bot.discord_app import (
    DISCORD_DESCRIPTION_MAX,
    UNEXPECTED_FAILURE,
    bot_permissions,
    build_discord_client,
    invite_url,
    login,
    run_discord,
    to_invocation,
)
from digests.errors import ConfigError

EPHEMERAL = 64
"""MessageFlags.EPHEMERAL (https://discord.com/developers/docs/resources/message#message-object-message-flags)."""
REAL_BODY = "discord_real_interaction_type2_slash_command_body_2025-06.json"
DOCS_BODY = "discord_docs_interaction_type2_slash_command_example.json"
DOCS_CHANNEL = {
    "type": 0,
    "name": "general",
    "position": 0,
    "nsfw": False,
    "parent_id": None,
    "topic": None,
}
"""The `channel` object Discord sends with every interaction since 2023; discord.py 2.7 reads channel_id from it."""
MEMBER_ONLY = "2048"
"""Send Messages only: no Manage Channels."""


def slash_payload(
    fixture: str,
    name: str,
    sub: str | None,
    options: dict[str, str],
    *,
    perms: str | None = None,
) -> dict:
    """Return a real interaction body with its command data rewritten to one of ours."""
    payload = json.loads((REALDATA / fixture).read_text(encoding="utf-8"))
    opts = [{"name": k, "type": 3, "value": v} for k, v in options.items()]
    if sub:
        opts = [{"name": sub, "type": 1, "options": opts}]
    payload["data"] = {
        "id": payload["data"]["id"],
        "name": name,
        "type": 1,
        "options": opts,
    }
    # The docs example predates fields Discord now always sends (and discord.py 2.7 requires).
    payload.setdefault("application_id", APP_ID)
    payload.setdefault("version", 1)
    payload.setdefault("attachment_size_limit", 10485760)
    payload["member"].setdefault("flags", 0)
    payload.setdefault(
        "channel",
        DOCS_CHANNEL | {"id": payload["channel_id"], "guild_id": payload["guild_id"]},
    )
    if perms is not None:
        payload["member"]["permissions"] = perms
    return payload


def autocomplete_payload(name: str, sub: str | None, option: str, partial: str) -> dict:
    """Wrap the real 2021 autocomplete `data` fragment in the real 2025 envelope, rewritten to our command."""
    envelope = json.loads((REALDATA / REAL_BODY).read_text(encoding="utf-8"))
    data = json.loads(
        (
            REALDATA
            / "discord_real_interaction_type4_autocomplete_data_fragment_2021.json"
        ).read_text()
    )
    focused = {**data["options"][0], "name": option, "value": partial}
    data.update(
        name=name,
        options=[{"name": sub, "type": 1, "options": [focused]}] if sub else [focused],
    )
    return {**envelope, "type": 4, "data": data}


@pytest.fixture
async def api():
    original = discord.http.Route.BASE
    async with FakeDiscordAPI() as fake:
        yield fake
    discord.http.Route.BASE = original


@pytest.fixture
async def client(api, fresh_core):
    core = dataclasses.replace(
        fresh_core,
        settings=dataclasses.replace(fresh_core.settings, discord_api_url=api.base_url),
    )
    bot = build_discord_client(core)
    await login(bot, "good-token")
    yield bot
    await bot.close()
    close_shared_lanes(core)


def close_shared_lanes(core) -> None:
    """Stop the process-wide lanes the commands ran on (the runner does this at shutdown)."""
    from bot.deliver import arxiv_lane, catalog_lane

    catalog_lane(core).close()
    arxiv_lane(core).close()


async def dispatch(client, payload: dict) -> None:
    interaction = discord.Interaction(
        data=copy.deepcopy(payload), state=client._connection
    )
    await client.tree._call(interaction)


def callbacks(api):
    return [r.body for r in api.calls("POST", r"/interactions/\d+/[^/]+/callback")]


def followups(api):
    return [r.body for r in api.calls("POST", rf"/webhooks/{APP_ID}/[^/]+")]


def assert_valid_message(body: dict) -> None:
    assert body["allowed_mentions"] == {"parse": []}
    assert UNEXPECTED_FAILURE not in (body.get("content") or "")
    assert len(body.get("content") or "") <= 2000
    embeds = [discord.Embed.from_dict(e) for e in body.get("embeds") or []]
    assert len(embeds) <= 10 and sum(len(e) for e in embeds) <= 6000


# -- the tree, the table and the README stay in sync --------------------------------------------


def test_tree_matches_command_table(fresh_core):
    tree = build_discord_client(fresh_core).tree
    top = {c.name: c for c in tree.get_commands()}
    assert set(top) == {"paper", "digest"}
    assert [c.name for c in top["digest"].commands] == list(digest_subcommands())
    for entry in COMMANDS:
        app = (
            top[entry.name]
            if entry.sub is None
            else top["digest"].get_command(entry.sub)
        )
        assert {p.name: p.required for p in app.parameters} == {
            o.name: o.required for o in entry.options
        }
        assert 1 <= len(app.description) <= DISCORD_DESCRIPTION_MAX
        assert all(
            1 <= len(p.description) <= DISCORD_DESCRIPTION_MAX for p in app.parameters
        )


def test_tree_options_autocomplete_and_day_choices(fresh_core):
    tree = build_discord_client(fresh_core).tree
    paper = tree.get_command("paper")
    schedule = tree.get_command("digest").get_command("schedule")
    assert paper.get_parameter("query").autocomplete
    assert schedule.get_parameter("tz").autocomplete
    assert [c.value for c in schedule.get_parameter("day").choices] == [
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
    ]
    assert tree.get_command("digest").guild_only


def test_readme_lists_every_command():
    readme = Path(__file__).parent.parent / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    match = re.search(r"^## Commands\b(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    if not match:
        pytest.skip(
            "README.md has no '## Commands' section yet (the lead writes README)"
        )
    for entry in COMMANDS:
        name = f"/{entry.name}" + (f" {entry.sub}" if entry.sub else "")
        assert name in match.group(1), (
            f"{name} is missing from README's Commands section"
        )


def test_minimal_intents_and_invite_permissions(fresh_core):
    client = build_discord_client(fresh_core)
    assert (
        client.intents.guilds
        and not client.intents.message_content
        and not client.intents.members
    )
    assert client.intents.value == discord.Intents(guilds=True).value
    perms = bot_permissions()
    assert {name for name, on in perms if on} == {
        "read_messages",
        "send_messages",
        "embed_links",
        "read_message_history",
    }
    assert (
        perms.view_channel and not perms.manage_channels and not perms.mention_everyone
    )
    assert invite_url(APP_ID) == (
        f"https://discord.com/oauth2/authorize?client_id={APP_ID}&scope=bot+applications.commands&permissions=84992"
    )


# -- slash commands through the tree ------------------------------------------------------------


async def test_paper_defers_ephemeral_then_follows_up_with_cards(api, client):
    await dispatch(
        client, slash_payload(REAL_BODY, "paper", None, {"query": "constitutional ai"})
    )
    assert callbacks(api) == [{"type": 5, "data": {"flags": EPHEMERAL}}]
    [body] = followups(api)
    assert body["flags"] & EPHEMERAL
    assert_valid_message(body)
    assert "constitutional" in json.dumps(body).lower()


async def test_paper_from_docs_example_payload(api, client):
    await dispatch(
        client,
        slash_payload(
            DOCS_BODY, "paper", None, {"query": "The Gitrog Monster @everyone"}
        ),
    )
    [body] = followups(api)
    assert_valid_message(body)
    assert "@everyone" not in json.dumps(body)


async def test_subscribe_without_manage_channels_is_refused_privately(api, client):
    payload = slash_payload(
        REAL_BODY, "digest", "subscribe", {"theme": "rlhf"}, perms=MEMBER_ONLY
    )
    await dispatch(client, payload)
    [callback] = callbacks(api)
    assert callback["type"] == 4 and callback["data"]["flags"] == EPHEMERAL
    assert (
        "Manage Channels" in callback["data"]["content"]
        and DISCORD_REFUSAL.split()[0] in callback["data"]["content"]
    )
    assert callback["data"]["allowed_mentions"] == {"parse": []}
    assert followups(api) == []
    from digests.channels import get_channel

    channel = get_channel(
        client.core, "discord:1380488052169769110:1380488052169769113"
    )
    assert channel is None or channel.themes == ()


async def test_subscribe_with_manage_channels_is_public(api, client):
    theme = client.core.theme_names[0]
    await dispatch(
        client, slash_payload(REAL_BODY, "digest", "subscribe", {"theme": theme})
    )
    assert callbacks(api) == [{"type": 5}]
    [body] = followups(api)
    assert not body.get("flags", 0) & EPHEMERAL
    assert_valid_message(body)
    from digests.channels import get_channel

    assert get_channel(
        client.core, "discord:1380488052169769110:1380488052169769113"
    ).themes == (theme,)


async def test_subscribe_unknown_theme_replaces_public_defer_with_private_answer(
    api, client
):
    await dispatch(
        client,
        slash_payload(REAL_BODY, "digest", "subscribe", {"theme": "no-such-theme"}),
    )
    assert api.calls("DELETE", rf"/webhooks/{APP_ID}/[^/]+/messages/@original")
    [body] = followups(api)
    assert body["flags"] & EPHEMERAL


async def test_schedule_and_help_replies(api, client):
    schedule = {"day": "fri", "time": "08:30", "tz": "Europe/Berlin"}
    await dispatch(client, slash_payload(REAL_BODY, "digest", "schedule", schedule))
    await dispatch(client, slash_payload(REAL_BODY, "digest", "help", {}))
    bodies = followups(api)
    assert len(bodies) == 2
    for body in bodies:
        assert_valid_message(body)
    assert (
        "/digest subscribe" in bodies[1]["content"] and bodies[1]["flags"] & EPHEMERAL
    )


# -- autocomplete -------------------------------------------------------------------------------


async def test_paper_autocomplete_answers_with_at_most_25_choices(api, client):
    await dispatch(client, autocomplete_payload("paper", None, "query", "constitu"))
    [callback] = callbacks(api)
    assert callback["type"] == 8
    choices = callback["data"]["choices"]
    assert 1 <= len(choices) <= 25
    assert all(len(c["name"]) <= 100 and len(c["value"]) <= 100 for c in choices)


async def test_tz_autocomplete_from_iana_names(api, client):
    await dispatch(client, autocomplete_payload("digest", "schedule", "tz", "berl"))
    [callback] = callbacks(api)
    assert {"name": "Europe/Berlin", "value": "Europe/Berlin"} in callback["data"][
        "choices"
    ]


async def test_synthetic_autocomplete_envelope_for_unknown_command_is_ignored(
    api, client
):
    synthetic = json.loads(
        (
            REALDATA
            / "discord_synthetic_interaction_type4_autocomplete_discord-interactions-js.json"
        ).read_text()
    )
    envelope = json.loads((REALDATA / REAL_BODY).read_text(encoding="utf-8"))
    interaction = discord.Interaction(
        data={**envelope, **synthetic}, state=client._connection
    )
    with pytest.raises(discord.app_commands.CommandNotFound):
        await client.tree._call(interaction)
    assert callbacks(api) == []


# -- login, sync, run ---------------------------------------------------------------------------


async def test_login_syncs_commands_once_then_only_when_changed(api, fresh_core):
    core = dataclasses.replace(
        fresh_core,
        settings=dataclasses.replace(fresh_core.settings, discord_api_url=api.base_url),
    )
    for _ in range(2):
        bot = build_discord_client(core)
        await login(bot, "good-token")
        await bot.close()
    [put] = api.calls("PUT", rf"/applications/{APP_ID}/commands")
    assert sorted(c["name"] for c in put.body) == ["digest", "paper"]


async def test_dev_guild_sync_goes_to_that_guild(api, fresh_core):
    settings = dataclasses.replace(
        fresh_core.settings,
        discord_api_url=api.base_url,
        discord_guild_id=1380488052169769110,
    )
    bot = build_discord_client(dataclasses.replace(fresh_core, settings=settings))
    await login(bot, "good-token")
    await bot.close()
    assert api.calls(
        "PUT", rf"/applications/{APP_ID}/guilds/1380488052169769110/commands"
    )
    assert not api.calls("PUT", rf"/applications/{APP_ID}/commands")


async def test_wrong_token_is_a_config_error_naming_the_variable(api, fresh_core):
    settings = dataclasses.replace(
        fresh_core.settings,
        discord_api_url=api.base_url,
        discord_token="wrong-token-value",
    )
    with pytest.raises(ConfigError) as info:
        await run_discord(dataclasses.replace(fresh_core, settings=settings))
    assert "DISCORD_TOKEN" in str(info.value) and "wrong-token-value" not in str(
        info.value
    )


async def test_missing_token_is_a_config_error(fresh_core):
    with pytest.raises(ConfigError) as info:
        await run_discord(fresh_core)
    assert str(info.value).startswith("DISCORD_TOKEN is not set")


async def test_autocomplete_drops_requests_the_user_has_typed_past(fresh_core):
    import asyncio
    import threading

    from bot.commands import find_command

    client = build_discord_client(fresh_core)
    command = find_command("paper")
    lane = client.lanes["autocomplete"]
    release = threading.Event()
    blocker = asyncio.ensure_future(lane.run(lambda core: release.wait()))
    older = asyncio.ensure_future(
        client.complete(command, command.options[0], "con", "u1")
    )
    newer = asyncio.ensure_future(
        client.complete(command, command.options[0], "constitu", "u1")
    )
    for _ in range(
        100
    ):  # let both requests take their tickets (event-loop turns, no waiting on time)
        if client._typing.get(("u1", "paper", None, "query")) == 2:
            break
        await asyncio.sleep(0)
    release.set()
    await blocker
    assert (
        await older == []
    )  # "con" alone has matches: this one was dropped, not answered
    assert [c.value for c in await newer]
    await client.close()


def test_restrict_digest_sets_default_member_permissions(fresh_core):
    tree = build_discord_client(fresh_core).tree
    plain = tree.get_command("digest").to_dict(tree)
    assert plain.get("default_member_permissions") is None
    settings = dataclasses.replace(
        fresh_core.settings, raw={"discord": {"restrict_digest": True}}
    )
    client = build_discord_client(dataclasses.replace(fresh_core, settings=settings))
    restricted = client.tree.get_command("digest").to_dict(client.tree)
    manage_channels = discord.Permissions(manage_channels=True).value
    assert int(restricted["default_member_permissions"]) == manage_channels
    assert (
        client.tree.get_command("paper")
        .to_dict(client.tree)
        .get("default_member_permissions")
        is None
    )


async def test_paper_in_a_direct_message(api, client):
    gateway = json.loads(
        (
            REALDATA
            / "discord_gateway_INTERACTION_CREATE_slash_command_DM_anonymized_2022.json"
        ).read_text()
    )
    payload = {
        **gateway["d"],
        "data": {"id": "300000000000000000", "name": "paper", "type": 1, "options": []},
        # Both sent by Discord today (discord.py 2.7 requires them); the 2022 capture predates them.
        "attachment_size_limit": 10485760,
        "channel": {"id": gateway["d"]["channel_id"], "type": 1},
    }
    payload["data"]["options"] = [
        {"name": "query", "type": 3, "value": "constitutional ai"}
    ]
    interaction = discord.Interaction(data=payload, state=client._connection)
    assert to_invocation(interaction).channel == "discord:dm:600000000000000000"
    assert to_invocation(interaction).can_manage is None
    await client.tree._call(interaction)
    [body] = api.calls("POST", r"/webhooks/200000000000000000/unique_token")
    assert body.body["flags"] & EPHEMERAL
    assert_valid_message(body.body)


@pytest.mark.parametrize(
    ("fixture", "perms", "key", "user", "can_manage"),
    [
        (
            REAL_BODY,
            None,
            "discord:1380488052169769110:1380488052169769113",
            "410212090289192960",
            True,
        ),
        (
            DOCS_BODY,
            None,
            "discord:290926798626357999:645027906669510667",
            "53908232506183680",
            True,
        ),
        (
            REAL_BODY,
            MEMBER_ONLY,
            "discord:1380488052169769110:1380488052169769113",
            "410212090289192960",
            False,
        ),
    ],
)
async def test_invocation_from_real_payloads(
    client, fixture, perms, key, user, can_manage
):
    payload = slash_payload(fixture, "paper", None, {"query": "x"}, perms=perms)
    inv = to_invocation(discord.Interaction(data=payload, state=client._connection))
    assert (inv.platform, inv.channel, inv.user, inv.can_manage) == (
        "discord",
        key,
        user,
        can_manage,
    )
