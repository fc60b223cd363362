"""Load the themes from config (stub; the matching work fills this in)."""

from __future__ import annotations

from .errors import UnknownThemeError
from .models import Theme
from .settings import Settings


def load_themes(settings: Settings) -> tuple[Theme, ...]:
    """Return the default themes plus the user's additions and edits from the config file."""
    return ()


def find_theme(themes: tuple[Theme, ...], name: str) -> Theme:
    """Return the theme called `name`; raise UnknownThemeError listing the known themes."""
    for theme in themes:
        if theme.name == name:
            return theme
    known = ", ".join(t.name for t in themes)
    raise UnknownThemeError(f"Unknown theme {name!r}. Themes: {known}", theme=name, known=[t.name for t in themes])
