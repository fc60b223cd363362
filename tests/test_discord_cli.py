"""`digestbot discord invite-url` and `digestbot discord sync` through click, sync against the loopback fake."""

from __future__ import annotations

import base64
import json

import discord
import pytest
from click.testing import CliRunner
from discord_fakes import APP_ID, ThreadedFakeDiscordAPI

from bot.cli import cli

URL = f"https://discord.com/oauth2/authorize?client_id={APP_ID}&scope=bot+applications.commands&permissions=84992"


@pytest.fixture(autouse=True)
def restore_route_base():
    original = discord.http.Route.BASE
    yield
    discord.http.Route.BASE = original


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["discord", *args], env=env, catch_exceptions=False)


def test_invite_url_with_client_id_needs_no_token():
    result = invoke("invite-url", "--client-id", APP_ID)
    assert result.exit_code == 0 and result.output == URL + "\n"


def test_invite_url_json_names_the_permissions():
    data = json.loads(invoke("invite-url", "--client-id", APP_ID, "--json").output)
    assert data["url"] == URL and data["permissions"] == 84992
    assert data["permission_names"] == [
        "embed_links",
        "read_message_history",
        "read_messages",
        "send_messages",
    ]


def test_invite_url_reads_the_application_id_from_the_token():
    token = (
        base64.urlsafe_b64encode(APP_ID.encode()).decode().rstrip("=")
        + ".GAbCdE.not-a-real-secret"
    )
    result = invoke("invite-url", env={"DISCORD_TOKEN": token})
    assert result.output == URL + "\n"
    assert "not-a-real-secret" not in result.output


def test_invite_url_without_an_id_says_what_to_pass():
    result = invoke("invite-url")
    assert result.exit_code == 1
    assert "--client-id" in result.output and "Traceback" not in result.output


def test_sync_dry_run_lists_commands_without_token():
    result = invoke("sync", "--dry-run")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert "/paper query:" in lines and "/digest schedule day: time: tz:" in lines


def test_sync_to_a_guild_against_the_fake_api():
    with ThreadedFakeDiscordAPI() as api:
        env = {"DIGESTBOT_DISCORD_API_URL": api.base_url, "DISCORD_TOKEN": "good-token"}
        result = invoke("sync", "--guild", "1380488052169769110", env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "Synced 2 commands to server 1380488052169769110: /paper, /digest"
    )
    [put] = api.calls(
        "PUT", rf"/applications/{APP_ID}/guilds/1380488052169769110/commands"
    )
    assert {c["name"] for c in put.body} == {"paper", "digest"}


def test_sync_with_a_rejected_token_is_one_line():
    with ThreadedFakeDiscordAPI() as api:
        env = {
            "DIGESTBOT_DISCORD_API_URL": api.base_url,
            "DISCORD_TOKEN": "rejected-secret",
        }
        result = invoke("sync", "--global", env=env)
    assert result.exit_code == 1
    assert "DISCORD_TOKEN" in result.output and "rejected-secret" not in result.output
    assert api.calls("PUT", r"/applications/.*") == []


def test_sync_without_token_names_the_variable():
    result = invoke("sync")
    assert result.exit_code == 1 and "DISCORD_TOKEN is not set" in result.output


def test_sync_clear_removes_a_dev_guilds_commands():
    with ThreadedFakeDiscordAPI() as api:
        env = {"DIGESTBOT_DISCORD_API_URL": api.base_url, "DISCORD_TOKEN": "good-token"}
        result = invoke("sync", "--guild", "42", "--clear", env=env)
    assert result.output == "Removed the bot's commands from server 42.\n"
    [put] = api.calls("PUT", rf"/applications/{APP_ID}/guilds/42/commands")
    assert put.body == []
