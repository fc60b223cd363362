"""`digestbot slack manifest|check` and the checked-in manifest."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.cli_slack import BOT_SCOPES, build_manifest, manifest_yaml
from tests.slack_fakes import TEST_APP_TOKEN, TEST_BOT_TOKEN

MANIFEST = Path(__file__).parent.parent / "config" / "slack-manifest.yaml"


def test_checked_in_manifest_is_the_generated_one():
    assert MANIFEST.read_text(encoding="utf-8") == manifest_yaml(), "run: digestbot slack manifest > config/slack-manifest.yaml"


def test_manifest_yaml_parses_to_the_manifest():
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(MANIFEST.read_text(encoding="utf-8")) == build_manifest()


def test_manifest_has_every_command_of_the_table_and_least_scopes():
    from bot.commands import COMMANDS, digest_subcommands

    manifest = build_manifest()
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {f"/{c.name}" for c in COMMANDS}
    for sub in digest_subcommands():
        assert sub in commands["/digest"]["usage_hint"]
    assert all(len(c["description"]) <= 100 for c in commands.values())
    assert manifest["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    assert "chat:write.public" not in BOT_SCOPES
    assert manifest["settings"]["socket_mode_enabled"] is True


def test_manifest_command_prints_yaml_and_json():
    runner = CliRunner()
    result = runner.invoke(cli, ["slack", "manifest"], catch_exceptions=False)
    assert result.exit_code == 0 and result.output == manifest_yaml()
    result = runner.invoke(cli, ["slack", "manifest", "--json"], catch_exceptions=False)
    assert json.loads(result.output) == build_manifest()


def test_check_without_token_is_one_line():
    result = CliRunner().invoke(cli, ["slack", "check"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: SLACK_BOT_TOKEN is not set") and result.output.count("\n") == 1


async def _invoke(args: list[str], env: dict[str, str]):
    runner = CliRunner()
    return await asyncio.get_running_loop().run_in_executor(None, lambda: runner.invoke(cli, args, env=env))


async def test_check_reports_the_workspace(slack_api):
    env = {"SLACK_BOT_TOKEN": TEST_BOT_TOKEN, "SLACK_SIGNING_SECRET": "s", "DIGESTBOT_SLACK_API_URL": slack_api.api_url}
    result = await _invoke(["slack", "check"], env)
    assert result.exit_code == 0, result.output
    assert "T0001" in result.output and "http" in result.output and TEST_BOT_TOKEN not in result.output


async def test_check_with_refused_app_token_names_it(slack_api):
    revoked = "xapp-1-revoked-app-token"
    env = {"SLACK_BOT_TOKEN": TEST_BOT_TOKEN, "SLACK_APP_TOKEN": revoked, "DIGESTBOT_SLACK_API_URL": slack_api.api_url}
    result = await _invoke(["slack", "check"], env)
    assert result.exit_code == 1
    assert "SLACK_APP_TOKEN" in result.output and revoked not in result.output


async def test_check_with_good_app_token_reports_socket_mode(slack_api):
    env = {"SLACK_BOT_TOKEN": TEST_BOT_TOKEN, "SLACK_APP_TOKEN": TEST_APP_TOKEN,
           "DIGESTBOT_SLACK_API_URL": slack_api.api_url}
    result = await _invoke(["slack", "check"], env)
    assert result.exit_code == 0, result.output
    assert "Mode: socket" in result.output
