"""The core facade: one object holding settings, the open store, themes and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from sqlite_utils import Database

from .models import Theme
from .settings import Settings, load_settings
from .store import open_db


def system_clock() -> datetime:
    """Return the current time, tz-aware UTC."""
    return datetime.now(timezone.utc)


@dataclass
class Core:
    """What every command and job needs: settings, the database, the themes and a clock."""

    settings: Settings
    db: Database
    themes: tuple[Theme, ...] = ()
    clock: Callable[[], datetime] = system_clock
    cache: dict[str, object] = field(default_factory=dict)
    """Per-process shared objects (lanes, rate limiters, posters, the scheduler hook) and memoised derived
    data. Never cleared wholesale: derived data keys itself on `catalog.catalog_version` (see match.get_matcher)."""

    def theme(self, name: str) -> Theme:
        """Return the theme called `name`, or raise UnknownThemeError listing the known ones."""
        from .themes import find_theme

        return find_theme(self.themes, name)

    @property
    def theme_names(self) -> tuple[str, ...]:
        """Return the configured theme names in config order."""
        return tuple(t.name for t in self.themes)


def open_core(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    clock: Callable[[], datetime] = system_clock,
    sync: bool = True,
) -> Core:
    """Open the store, load themes, and (with `sync`) bring the seed catalog and config channels up to date."""
    from .themes import load_themes

    settings = settings or load_settings()
    db = db if db is not None else open_db(settings.db_path)
    core = Core(settings=settings, db=db, themes=load_themes(settings), clock=clock)
    if sync:
        from .catalog import sync_seeds

        sync_seeds(core)
        from .channels import apply_config_channels

        apply_config_channels(core)
    return core
