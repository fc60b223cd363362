"""Load configuration from the TOML config file and the environment into a frozen `Settings`.

This is the only module that reads environment variables. Secrets (tokens, signing secrets)
come only from the environment, never from the config file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import platformdirs

from .errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEEDS_DIR = PROJECT_ROOT / "seeds"
DEFAULT_THEMES_FILE = PROJECT_ROOT / "config" / "themes.toml"

ARXIV_API_URL = "https://export.arxiv.org/api/query"
ARXIV_RSS_URL = "https://rss.arxiv.org/rss/"
SLACK_API_URL = "https://slack.com/api/"
DISCORD_API_URL = "https://discord.com/api/v10"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved once at start."""

    home: Path
    """Data directory (`DIGESTBOT_HOME`, default: the platform's user data dir)."""
    config_path: Path | None = None
    """The TOML file read (`DIGESTBOT_CONFIG`, else `$DIGESTBOT_HOME/digestbot.toml` if present)."""
    seeds_dir: Path = DEFAULT_SEEDS_DIR
    themes_file: Path = DEFAULT_THEMES_FILE
    arxiv_api_url: str = ARXIV_API_URL
    """`DIGESTBOT_ARXIV_API_URL`; every arXiv API request goes through it."""
    arxiv_rss_url: str = ARXIV_RSS_URL
    """`DIGESTBOT_ARXIV_RSS_URL`: base of the announcement feeds (`<base><cats>`)."""
    arxiv_contact: str = "digestbot-admin@example.org"
    """Contact address put in the User-Agent, as arXiv asks (https://info.arxiv.org/help/api/tou.html)."""
    arxiv_delay_seconds: float = 3.0
    """arXiv ToU: no more than one request every three seconds, one connection at a time."""
    arxiv_page_size: int = 500
    """Results per API page; arXiv serves at most 2000 per slice."""
    arxiv_timeout_seconds: float = 30.0
    arxiv_retries: int = 4
    slack_api_url: str = SLACK_API_URL
    """`DIGESTBOT_SLACK_API_URL`, handed to slack_sdk's WebClient as base_url."""
    discord_api_url: str = DISCORD_API_URL
    """`DIGESTBOT_DISCORD_API_URL`, the REST base discord.py talks to."""
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_port: int = 3000
    discord_token: str | None = field(default=None, repr=False)
    discord_guild_id: int | None = None
    admins: tuple[str, ...] = ()
    """User ids allowed to change subscriptions; empty means anyone in the channel."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The parsed config file, for sections owned by other modules (themes, channels, matching)."""

    @property
    def db_path(self) -> Path:
        """Return the SQLite file holding all state."""
        return self.home / "digestbot.db"

    @property
    def user_agent(self) -> str:
        """Return the descriptive User-Agent arXiv asks for, with a contact address."""
        from . import __version__

        return f"digestbot/{__version__} (+https://github.com/digestbot/digestbot; mailto:{self.arxiv_contact})"

    def section(self, name: str) -> Any:
        """Return one top-level section of the config file (a table, a list, or {})."""
        return self.raw.get(name, {})


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}; fix it in your environment", variable=name) from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file and environment into Settings; raise ConfigError on bad values."""
    env = os.environ if env is None else env
    home = Path(env.get("DIGESTBOT_HOME") or platformdirs.user_data_dir("digestbot"))
    config_path: Path | None = None
    if env.get("DIGESTBOT_CONFIG"):
        config_path = Path(env["DIGESTBOT_CONFIG"])
        if not config_path.is_file():
            raise ConfigError(
                f"DIGESTBOT_CONFIG points to {config_path}, which does not exist", variable="DIGESTBOT_CONFIG"
            )
    elif (home / "digestbot.toml").is_file():
        config_path = home / "digestbot.toml"
    raw: dict[str, Any] = {}
    if config_path is not None:
        try:
            raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path} is not valid TOML: {exc}", variable=str(config_path)) from None
    arxiv = raw.get("arxiv", {})
    slack = raw.get("slack", {})
    discord = raw.get("discord", {})
    paths = raw.get("paths", {})
    base = config_path.parent if config_path else Path.cwd()
    return Settings(
        home=home,
        config_path=config_path,
        seeds_dir=(base / paths["seeds"]) if "seeds" in paths else DEFAULT_SEEDS_DIR,
        themes_file=(base / paths["themes"]) if "themes" in paths else DEFAULT_THEMES_FILE,
        arxiv_api_url=env.get("DIGESTBOT_ARXIV_API_URL") or ARXIV_API_URL,
        arxiv_rss_url=env.get("DIGESTBOT_ARXIV_RSS_URL") or ARXIV_RSS_URL,
        arxiv_contact=str(arxiv.get("contact", Settings.arxiv_contact)),
        arxiv_delay_seconds=float(arxiv.get("delay_seconds", 3.0)),
        arxiv_page_size=min(int(arxiv.get("page_size", 500)), 2000),
        arxiv_timeout_seconds=float(arxiv.get("timeout_seconds", 30.0)),
        arxiv_retries=int(arxiv.get("retries", 4)),
        slack_api_url=env.get("DIGESTBOT_SLACK_API_URL") or SLACK_API_URL,
        discord_api_url=env.get("DIGESTBOT_DISCORD_API_URL") or DISCORD_API_URL,
        slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
        slack_app_token=env.get("SLACK_APP_TOKEN") or None,
        slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
        slack_port=int(slack.get("port", 3000)),
        discord_token=env.get("DISCORD_TOKEN") or None,
        discord_guild_id=_int_env(env, "DISCORD_GUILD_ID"),
        admins=tuple(str(a) for a in (slack.get("admins", []) + discord.get("admins", []) + raw.get("admins", []))),
        raw=raw,
    )
