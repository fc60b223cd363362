"""`digestbot discord ...`: the invite URL and on-demand command sync (the bot itself runs in `digestbot run`)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import click

from bot.cli_common import friendly_errors, json_option, print_json


@click.group(name="discord")
def discord_group() -> None:
    """Set up the Discord bot: invite it to a server, register its slash commands.

    \b
    Example:
        digestbot discord invite-url --client-id 1380486651436073092
        DISCORD_GUILD_ID=1380488052169769110 digestbot discord sync
    """


def application_id_from_token(token: str | None) -> str | None:
    """Return the bot's id encoded in the first part of a bot token (it is the application id), or None."""
    if not token or "." not in token:
        return None
    head = token.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode(
            "ascii"
        )
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded if decoded.isdigit() else None


def resolve_client_id(client_id: str | None, settings: Any) -> str:
    """Return the application id from --client-id, `[discord] application_id`, or DISCORD_TOKEN; else explain."""
    found = (
        client_id
        or str(settings.section("discord").get("application_id") or "")
        or application_id_from_token(settings.discord_token)
    )
    if not found or not str(found).isdigit():
        raise click.ClickException(
            "Pass --client-id with your Application ID (Discord Developer Portal > your app > General Information), "
            "or set application_id under [discord] in the config file."
        )
    return str(found)


@discord_group.command(name="invite-url")
@click.option(
    "--client-id", help="The application id (Developer Portal > General Information)."
)
@json_option
@friendly_errors
def invite_url(client_id: str | None, as_json: bool) -> None:
    """Print the link that adds the bot to a server you manage.

    It asks for the scopes bot and applications.commands and only the permissions
    the bot uses: View Channel, Send Messages, Embed Links, Read Message History.
    No token is needed when you pass --client-id.

    \b
    Example:
        digestbot discord invite-url --client-id 1380486651436073092
    """
    from bot.discord_app import bot_permissions
    from bot.discord_app import invite_url as make_url
    from digests.settings import load_settings

    app_id = resolve_client_id(client_id, load_settings())
    url = make_url(app_id)
    if as_json:
        perms = bot_permissions()
        print_json(
            {
                "url": url,
                "client_id": app_id,
                "permissions": perms.value,
                "permission_names": sorted(name for name, on in perms if on),
            }
        )
    else:
        click.echo(url)


@discord_group.command(name="sync")
@click.option(
    "--guild",
    "guild_id",
    type=int,
    help="Sync to this server only (default: DISCORD_GUILD_ID).",
)
@click.option(
    "--global",
    "to_global",
    is_flag=True,
    help="Sync to every server the bot is in.",
)
@click.option(
    "--clear",
    is_flag=True,
    help="Remove the bot's commands from that server (or globally) instead.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the commands that would be sent; needs no token.",
)
@json_option
@friendly_errors
def sync(
    guild_id: int | None, to_global: bool, clear: bool, dry_run: bool, as_json: bool
) -> None:
    """Register the /paper and /digest slash commands with Discord now.

    With DISCORD_GUILD_ID (or --guild) the commands go to that one server and
    appear at once, which suits development; with --global, or without a guild
    id, they go to every server the bot is in. `digestbot run` syncs by itself
    when the commands changed, so you need this only to force it. Moving from
    a dev server to global? Sync --global, then --clear that server, or its
    members see every command twice.

    \b
    Example:
        DISCORD_TOKEN=... digestbot discord sync --guild 1380488052169769110
        DISCORD_TOKEN=... digestbot discord sync --global
        DISCORD_TOKEN=... digestbot discord sync --guild 1380488052169769110 --clear
        digestbot discord sync --dry-run --json
    """
    import asyncio

    from bot.cli_common import get_core

    core = get_core(sync=False)
    target = None if to_global else (guild_id or core.settings.discord_guild_id)
    if dry_run:
        from bot.discord_app import build_discord_client, commands_payload

        client = build_discord_client(core)
        payload = commands_payload(client.tree)
        if as_json:
            print_json(payload)
        else:
            click.echo("\n".join(_lines(payload)))
        return
    synced = asyncio.run(_sync(core, target, clear))
    where = f"server {target}" if target else "every server the bot is in"
    if as_json:
        print_json({"scope": target or "global", "commands": synced})
    elif clear:
        click.echo(f"Removed the bot's commands from {where}.")
    else:
        names = ", ".join(f"/{name}" for name in synced)
        click.echo(f"Synced {len(synced)} commands to {where}: {names}")


async def _sync(core: Any, guild_id: int | None, clear: bool = False) -> list[str]:
    from bot.discord_app import (
        build_discord_client,
        login,
        require_token,
        shared_lane,
        sync_commands,
    )

    client = build_discord_client(core)
    client.sync_on_start = False
    try:
        await login(client, require_token(core))
        synced = await sync_commands(client, guild_id, clear=clear) or []
    finally:
        await client.close()
        shared_lane(core, "catalog").close()
    return [command.name for command in synced]


def _lines(payload: list[dict[str, Any]]) -> list[str]:
    lines = []
    for command in payload:
        subs = [o for o in command.get("options", []) if o.get("type") == 1]
        for sub in subs or [command]:
            name = f"/{command['name']}" + (
                f" {sub['name']}" if sub is not command else ""
            )
            options = " ".join(
                f"{o['name']}:" for o in sub.get("options", []) if o.get("type") != 1
            )
            lines.append(f"{name} {options}".rstrip())
    return lines
