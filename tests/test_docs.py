"""Docs and code stay in sync: README quick start, chat command table, CLI commands, --help everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bot.cli import COMMANDS as CLI_COMMANDS
from bot.cli import cli
from bot.commands import COMMANDS, commands_markdown

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_quick_start_is_one_block_of_two_lines():
    section = README.split("## Quick start", 1)[1]
    block = section.split("```", 2)[1]
    lines = [line for line in block.splitlines() if line.strip()]
    assert lines == ['pip install -e . && digestbot demo', 'pip install -e ".[test]" && python -m pytest -q']


def test_ci_runs_readme_line_two():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "Quick start" in ci and "n==2" in ci


def test_chat_command_table_in_readme_matches_command_table():
    assert commands_markdown() in README


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.usage)
def test_every_chat_command_has_help_and_example(command):
    assert command.help and command.example


def _walk(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _walk(command, prefix + (name,))


ALL_CLI = list(_walk(cli))


def test_every_top_level_command_loads():
    assert [path[0] for path, _ in ALL_CLI if len(path) == 1] == list(CLI_COMMANDS)


@pytest.mark.parametrize("path", [p for p, _ in ALL_CLI], ids=" ".join)
def test_every_cli_command_has_help_with_example_and_is_in_readme(path):
    result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Example" in result.output
    assert re.search(r"digestbot " + re.escape(" ".join(path)) + r"\b", README), f"README lacks digestbot {' '.join(path)}"
