"""Load the digest themes: defaults from config/themes.toml plus the user's `[[themes]]` tables.

A user table whose `name` matches a default overrides only the keys it gives; any other name adds a
theme. `enabled = false` drops a theme. Every problem is a ConfigError naming the theme, the key and
the file to fix. The themes file's `[shared] negative_keywords` are appended to every theme's own list
(they name fields that borrow the themes' words). A keyword starting with "~" is weak: see digests/match.py.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownThemeError
from .models import Theme
from .settings import Settings

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
LIST_KEYS = ("keywords", "categories", "exemplars", "negative_keywords")
TEXT_KEYS = ("name", "label", "description")
ALLOWED_KEYS = frozenset(TEXT_KEYS + LIST_KEYS + ("threshold", "enabled"))
CATEGORY = re.compile(r"^[a-z-]+(\.[A-Za-z-]+)?$")


def load_themes(settings: Settings) -> tuple[Theme, ...]:
    """Return the default themes plus the user's additions and edits from the config file."""
    defaults, shared_negatives = _read_defaults(settings.themes_file)
    user_where = str(settings.config_path or "your config file")
    tables = {t["name"]: t for t in defaults}
    order = [t["name"] for t in defaults]
    for table in _user_tables(settings.section("themes"), user_where):
        name = table["name"]
        if name in tables:
            tables[name] = {**tables[name], **table}
        else:
            tables[name] = table
            order.append(name)
    themes = []
    for name in order:
        table = tables[name]
        if table.get("enabled", True) is False:
            continue
        where = user_where if name not in {t["name"] for t in defaults} else f"{settings.themes_file} or {user_where}"
        themes.append(_to_theme(table, shared_negatives, where))
    if not themes:
        raise ConfigError(f"No themes are configured; add a [[themes]] table to {user_where}", variable="themes")
    return tuple(themes)


def find_theme(themes: Iterable[Theme], name: str) -> Theme:
    """Return the theme whose slug or label is `name` (any case); raise UnknownThemeError with suggestions."""
    themes = tuple(themes)
    wanted = _fold(name)
    for theme in themes:
        if wanted in (_fold(theme.name), _fold(theme.label)):
            return theme
    known = [t.name for t in themes]
    suggestions = suggest_themes(themes, name)
    hint = f" Did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    raise UnknownThemeError(
        f"There is no theme called {name!r}.{hint} Themes: {', '.join(known)}",
        theme=name,
        known=known,
        suggestions=suggestions,
    )


def suggest_themes(themes: Iterable[Theme], name: str, n: int = 2) -> list[str]:
    """Return up to `n` theme slugs closest to `name` (by slug or label), best first."""
    by_key: dict[str, str] = {}
    for theme in themes:
        by_key.setdefault(_fold(theme.name), theme.name)
        by_key.setdefault(_fold(theme.label), theme.name)
    wanted = _fold(name)
    close = difflib.get_close_matches(wanted, list(by_key), n=n * 2, cutoff=0.5)
    prefix = [key for key in by_key if wanted and (key.startswith(wanted) or wanted in key.split("-"))]
    out: list[str] = []
    for key in prefix + close:
        if by_key[key] not in out:
            out.append(by_key[key])
    return out[:n]


def _fold(text: str) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def _read_defaults(path: Path) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"The themes file {path} does not exist; set [paths] themes in your config file", variable="paths.themes"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The themes file {path} is not valid TOML: {exc}", variable="paths.themes") from None
    shared = raw.get("shared", {})
    negatives = _string_list(shared.get("negative_keywords", []), "shared.negative_keywords", str(path))
    tables = _user_tables(raw.get("themes", []), str(path))
    return tables, negatives


def _user_tables(section: Any, where: str) -> list[dict[str, Any]]:
    """Return the `[[themes]]` tables checked for names and unknown keys (a `[themes.<name>]` map is accepted too)."""
    if isinstance(section, Mapping):
        section = [{"name": key, **value} for key, value in section.items() if isinstance(value, Mapping)]
    if not isinstance(section, list):
        raise ConfigError(f"`themes` in {where} must be a list of [[themes]] tables", variable="themes")
    seen: set[str] = set()
    tables = []
    for index, table in enumerate(section, 1):
        if not isinstance(table, Mapping):
            raise ConfigError(f"themes entry {index} in {where} must be a table", variable="themes")
        name = table.get("name")
        if not isinstance(name, str) or not SLUG.match(name):
            raise ConfigError(
                f"themes entry {index} in {where} needs a `name`: a short slug of lowercase letters, digits "
                f'and hyphens such as "rlhf" (got {name!r})',
                variable="themes.name",
            )
        unknown = sorted(set(table) - ALLOWED_KEYS)
        if unknown:
            raise ConfigError(
                f"Theme {name!r} in {where} has unknown key(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(ALLOWED_KEYS))}",
                variable=f"themes.{name}.{unknown[0]}",
            )
        if name in seen:
            raise ConfigError(f"Theme {name!r} appears twice in {where}", variable=f"themes.{name}")
        seen.add(name)
        tables.append(dict(table))
    return tables


def _to_theme(table: Mapping[str, Any], shared_negatives: tuple[str, ...], where: str) -> Theme:
    name = table["name"]
    for key in ("label", "description"):
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ConfigError(
                f"Theme {name!r} in {where}: `{key}` must be non-empty text", variable=f"themes.{name}.{key}"
            )
    lists = {key: _string_list(table.get(key, []), f"themes.{name}.{key}", where) for key in LIST_KEYS}
    if not lists["keywords"] and not lists["exemplars"]:
        raise ConfigError(
            f"Theme {name!r} in {where} needs `keywords` or `exemplars`, or nothing can ever match it",
            variable=f"themes.{name}.keywords",
        )
    bad = [c for c in lists["categories"] if not CATEGORY.match(c)]
    if bad:
        raise ConfigError(
            f'Theme {name!r} in {where}: {bad[0]!r} is not an arXiv category such as "cs.CL"',
            variable=f"themes.{name}.categories",
        )
    return Theme(
        name=name,
        label=str(table.get("label") or name),
        description=str(table.get("description") or table.get("label") or name),
        keywords=lists["keywords"],
        categories=lists["categories"],
        exemplars=lists["exemplars"],
        threshold=_threshold(table.get("threshold"), name, where),
        negative_keywords=_dedupe(lists["negative_keywords"] + shared_negatives),
    )


def _threshold(value: Any, name: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(
            f"Theme {name!r} in {where}: `threshold` must be a number between 0 and 1 (the default is 0.5), "
            f"got {value!r}",
            variable=f"themes.{name}.threshold",
        )
    return float(value)


def _string_list(value: Any, variable: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"`{variable}` in {where} must be a list of non-empty strings", variable=variable)
    return _dedupe(tuple(" ".join(v.split()) for v in value))


def _dedupe(items: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            out.append(item)
    return tuple(out)
