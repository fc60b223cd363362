"""The `digestbot` command line: one click group whose subcommands load lazily.

Subcommands live in `bot/cli_*.py` modules that import only click at module level, so
`digestbot --help` never pays for scikit-learn, slack-bolt or discord.py.
"""

from __future__ import annotations

import importlib

import click

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# name -> "module:attribute"; order is the order `--help` lists them in.
COMMANDS: dict[str, str] = {
    "demo": "bot.cli_catalog:demo",
    "papers": "bot.cli_catalog:papers",
    "paper": "bot.cli_catalog:paper",
    "themes": "bot.cli_catalog:themes",
    "catalog": "bot.cli_catalog:catalog_group",
    "db": "bot.cli_catalog:db_group",
    "fetch": "bot.cli_fetch:fetch",
    "subscribe": "bot.cli_digest:subscribe",
    "unsubscribe": "bot.cli_digest:unsubscribe",
    "channels": "bot.cli_digest:channels",
    "digest": "bot.cli_digest:digest_group",
    "status": "bot.cli_run:status",
    "run": "bot.cli_run:run",
    "console": "bot.cli_console:console",
    "discord": "bot.cli_discord:discord_group",
    "slack": "bot.cli_slack:slack_group",
}


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module only when it is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr, None)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="digestbot")
def cli() -> None:
    """Weekly AI post-training and alignment paper digests for Slack and Discord.

    Everything works offline on the bundled seed catalog; no tokens are needed
    until you connect a workspace. Data lives under $DIGESTBOT_HOME.

    \b
    Example:
        digestbot demo
        digestbot paper "constitutional ai"
    """
