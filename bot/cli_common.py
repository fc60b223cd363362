"""Helpers every `bot/cli_*.py` module shares: opening the core, JSON output, error translation."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of text.")


def get_core(sync: bool = True) -> Any:
    """Open the core from the environment; ConfigError and friends become a one-line ClickException."""
    from digests.service import open_core

    return open_core(sync=sync)


def print_json(obj: Any) -> None:
    """Print `obj` as indented UTF-8 JSON."""
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def friendly_errors(func: F) -> F:
    """Turn any DigestBotError raised by a command into a one-line `Error: ...` and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from digests.errors import DigestBotError

        try:
            return func(*args, **kwargs)
        except DigestBotError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def is_tty() -> bool:
    """Return True when stderr is a terminal (progress bars go there)."""
    return sys.stderr.isatty()
