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
