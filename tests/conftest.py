"""Shared fixtures: every test gets its own DIGESTBOT_HOME and no platform tokens."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

REALDATA = Path(__file__).parent / "fixtures" / "realdata"


@pytest.fixture(autouse=True)
def env_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point DIGESTBOT_HOME at a tmp dir and scrub SLACK_*/DISCORD_*/DIGESTBOT_* variables."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "DISCORD_", "DIGESTBOT_")):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("DIGESTBOT_HOME", str(home))
    return home


@pytest.fixture
def fixed_now() -> datetime:
    """Return a fixed tz-aware instant: Wednesday 2026-11-25 12:00 UTC."""
    return datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def fresh_core(tmp_path: Path, fixed_now: datetime):
    """Return a Core on a real SQLite file in tmp_path, seeds loaded, clock fixed."""
    from digests.service import open_core
    from digests.settings import load_settings

    settings = load_settings()
    return open_core(settings, clock=lambda: fixed_now)


@pytest.fixture
async def slack_api():
    """Return a loopback fake Slack Web API (tests/slack_fakes.py) on port 0, stopped after the test."""
    from tests.slack_fakes import FakeSlackAPI

    fake = await FakeSlackAPI().start()
    yield fake
    await fake.stop()


@pytest.fixture
def slack_core(fresh_core, slack_api):
    """Return fresh_core with test Slack tokens and its Web API pointed at `slack_api`."""
    import dataclasses

    from bot.slack_app import close_lanes
    from tests.slack_fakes import TEST_BOT_TOKEN, TEST_SIGNING_SECRET

    settings = dataclasses.replace(
        fresh_core.settings,
        slack_bot_token=TEST_BOT_TOKEN,
        slack_signing_secret=TEST_SIGNING_SECRET,
        slack_api_url=slack_api.api_url,
    )
    core = dataclasses.replace(fresh_core, settings=settings)
    yield core
    close_lanes(core)


@pytest.fixture
async def app_server(slack_core):
    """Serve the real bolt app for `slack_core` on a loopback port."""
    from bot.slack_app import build_slack_app
    from tests.slack_fakes import serve_app

    server = await serve_app(build_slack_app(slack_core).web_app())
    yield server
    await server.stop()
