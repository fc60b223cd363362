"""`digestbot console`: run /paper and /digest in a terminal or from piped input, with no tokens."""

from __future__ import annotations

import sys

import click

from .cli_common import friendly_errors, get_core


@click.command()
@click.argument("lines", nargs=-1)
@click.option(
    "--channel",
    "-c",
    default="console:local",
    show_default=True,
    help="Console channel to act for: a name or a full console:<name> key.",
)
@click.option("--user", default="console", show_default=True, help="User id the commands run as.")
@friendly_errors
def console(lines: tuple[str, ...], channel: str, user: str) -> None:
    """Use the chat commands without Slack or Discord.

    Give commands as arguments, pipe them in one per line, or type them at the
    prompt. Each runs for a console channel exactly as it would in a chat channel,
    and the reply is printed as text. Exits with status 1 if any command failed.

    \b
    Example:
        digestbot console "/digest subscribe rlhf" "/digest preview"
        printf '/paper constitutional ai\\n/digest topics\\n' | digestbot console
        digestbot console --channel console:team
    """
    from digests.channels import parse_channel_key

    from .console import CONSOLE_HELP, channel_key, prompt_lines, run_console

    key = channel_key(channel)
    parse_channel_key(key)
    core = get_core()
    interactive = not lines and sys.stdin.isatty()
    if lines:
        source = list(lines)
    elif interactive:
        click.echo(f"digestbot console for {key}. {CONSOLE_HELP}")
        source = prompt_lines()
    else:
        source = sys.stdin
    failures = run_console(core, key, source, click.echo, user=user, prompt=interactive)
    if failures and not interactive:
        sys.exit(1)
