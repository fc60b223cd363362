"""Discord front end: a discord.py Client whose app-command tree is generated from `bot.commands.COMMANDS`.

`/paper query:` and the `/digest` group (subscribe, unsubscribe, topics, schedule, preview, status, help) carry the
same names and options as Slack. Each callback translates the interaction into an `Invocation`, defers, runs the
neutral command on a lane (never on the event loop), and sends `render_discord_reply(...)` as a followup with no
mentions allowed. Commands use the process-wide lanes of bot.deliver, shared with Slack and the scheduler: the
catalog lane (SQLite writes one at a time) and, for `/paper <arXiv id>` not in the catalog, the arXiv lane (one
arXiv request at a time). Autocomplete only reads, on a lane of its own, so typing never waits behind a command
or a digest fan-out.

The REST base comes from `settings.discord_api_url` (`DIGESTBOT_DISCORD_API_URL`); `use_api_base` is the one place
that points discord.py at it, so tests and outside checks run the real discord.py HTTP client against a loopback
server. Gateway intents are minimal: `guilds` only, no message content.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands

from bot.commands import (
    COMMANDS,
    Command,
    Invocation,
    Option,
    autocomplete,
    permission_refusal,
    run_sub,
)
from bot.render_discord import render_discord_reply
from bot.replies import Reply
from digests.errors import ConfigError

if TYPE_CHECKING:
    from digests.service import Core

log = logging.getLogger(__name__)
T = TypeVar("T")

DISCORD_DESCRIPTION_MAX = 100
"""Command and option descriptions (https://discord.com/developers/docs/interactions/application-commands)."""
DISCORD_CHOICES_MAX = 25
"""Choices per option and per autocomplete answer (same page)."""
DISCORD_CHOICE_MAX = 100
"""Choice name and string value length (same page)."""
AUTOCOMPLETE_TIMEOUT = 1.5
"""Seconds we give the catalog; Discord drops an autocomplete answer that comes after 3 s. The margin is for a
busy machine: a catalog scan in the lane thread holds the GIL and slows the event loop that sends the answer."""
DAYS = (
    ("Monday", "mon"),
    ("Tuesday", "tue"),
    ("Wednesday", "wed"),
    ("Thursday", "thu"),
    ("Friday", "fri"),
    ("Saturday", "sat"),
    ("Sunday", "sun"),
)
AUTOCOMPLETED_KINDS = frozenset({"query", "theme", "tz"})
"""Option kinds answered from the catalog while typing. Themes use autocomplete rather than fixed choices
because `subscribe` accepts several theme names in one option."""
UNEXPECTED_FAILURE = "Something went wrong on our side while running that command; it has been logged. Try again later."


def use_api_base(url: str) -> None:
    """Point discord.py's REST client (and its webhook/interaction adapter, which share `Route`) at `url`."""
    discord.http.Route.BASE = url.rstrip("/")


def bot_permissions() -> discord.Permissions:
    """Return exactly the permissions the bot uses: see channels, post digests with embeds, read back history."""
    return discord.Permissions(
        view_channel=True,
        send_messages=True,
        embed_links=True,
        read_message_history=True,
    )


def invite_url(client_id: int | str) -> str:
    """Return the OAuth2 URL that adds the bot with scopes bot + applications.commands and `bot_permissions()`."""
    return discord.utils.oauth_url(
        client_id,
        permissions=bot_permissions(),
        scopes=("bot", "applications.commands"),
    )


class CoreLane:
    """A single-thread executor with its own SQLite connection (sqlite3 objects may not cross threads)."""

    def __init__(self, core: Core, name: str) -> None:
        self.core = core
        self.name = name
        self._path = _db_file(core)
        self._local: Core | None = None
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"discord-{name}")
            if self._path
            else None
        )

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run `func(core, *args)` in the lane and return its result (inline for an in-memory database)."""
        if self._pool is None:
            return func(self.core, *args)
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._call, func, args
        )

    def _call(self, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._local is None:
            from digests.store import open_db

            self._local = dataclasses.replace(self.core, db=open_db(self._path))
        return func(self._local, *args)

    def close(self) -> None:
        """Stop the lane's thread after the work in hand."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _db_file(core: Core) -> str | None:
    rows = core.db.execute("PRAGMA database_list").fetchall()
    return next((row[2] for row in rows if row[1] == "main" and row[2]), None)


def channel_key(interaction: discord.Interaction) -> str:
    """Return the channel key `discord:<guild>:<channel>` (`discord:dm:<channel>` outside a server)."""
    return f"discord:{interaction.guild_id or 'dm'}:{interaction.channel_id}"


def to_invocation(interaction: discord.Interaction) -> Invocation:
    """Translate an interaction into the neutral Invocation (Manage Channels -> can_manage)."""
    can_manage = (
        interaction.permissions.manage_channels if interaction.guild_id else None
    )
    return Invocation(
        platform="discord",
        channel=channel_key(interaction),
        user=str(interaction.user.id),
        can_manage=can_manage,
    )


def shorten(text: str, limit: int = DISCORD_DESCRIPTION_MAX) -> str:
    """Return `text` cut at a word boundary to fit `limit` characters, with an ellipsis when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(".,;:") + "\u2026"


def lane_for(core: Core, command: Command, args: dict[str, Any]) -> str:
    """Return the lane a command needs: `arxiv` only for `/paper <arXiv id>` that isn't in the catalog yet."""
    from digests.catalog import get_by_arxiv_id, parse_arxiv_ref

    ref = (
        parse_arxiv_ref(str(args.get("query") or ""))
        if command.name == "paper"
        else None
    )
    if ref is None or get_by_arxiv_id(core, ref[0]) is not None:
        return "catalog"
    return "arxiv"


def shared_lane(core: Core, name: str) -> Any:
    """Return the process-wide `catalog` or `arxiv` lane (bot.deliver), created on first use."""
    from bot.deliver import arxiv_lane, catalog_lane

    return arxiv_lane(core) if name == "arxiv" else catalog_lane(core)


class DigestClient(discord.Client):
    """The bot: a Client with the generated command tree; commands on the shared lanes, autocomplete on its own."""

    def __init__(self, core: Core, *, intents: discord.Intents | None = None) -> None:
        super().__init__(intents=intents or minimal_intents())
        self.core = core
        self.lanes = {"autocomplete": CoreLane(core, "autocomplete")}
        self.tree = app_commands.CommandTree(self)
        self.sync_on_start = True
        self._typing: dict[tuple[str, str, str | None, str], int] = {}
        """Latest autocomplete ticket per (user, command, sub, option): older queued requests are dropped."""
        add_commands(self.tree, self)

    async def setup_hook(self) -> None:
        """Sync the commands when they differ from what this bot last synced to the same scope."""
        if self.sync_on_start:
            await sync_commands(
                self, self.core.settings.discord_guild_id, only_if_changed=True
            )

    async def close(self) -> None:
        """Close the connection and stop the autocomplete lane (the shared lanes belong to the process)."""
        await super().close()
        for lane in self.lanes.values():
            lane.close()

    async def run_command(
        self, interaction: discord.Interaction, command: Command, args: dict[str, Any]
    ) -> None:
        """Defer, run the neutral command in the command lane, and send its reply as a followup.

        A change the user may not make is refused at once and privately (the policy is `permission_refusal`);
        an allowed change is answered in the channel, everything else only to the user.
        """
        inv = to_invocation(interaction)
        refusal = (
            permission_refusal(self.core, inv) if command.changes_subscription else None
        )
        if refusal:
            payload = render_discord_reply(Reply(refusal, ok=False))
            await interaction.response.send_message(
                content=payload["content"],
                ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
            return
        public = command.changes_subscription
        await interaction.response.defer(ephemeral=not public, thinking=True)
        values = {k: v for k, v in args.items() if v is not None}
        try:
            catalog = shared_lane(self.core, "catalog")
            name = await catalog.run(lane_for, command, values)
            reply = await shared_lane(self.core, name).run(
                run_sub, inv, command.name, command.sub, values
            )
        except Exception:
            # The per-interaction boundary: log with context and tell the user, never a traceback.
            log.exception(
                "/%s %s failed in %s for %s",
                command.name,
                command.sub or "",
                inv.channel,
                inv.user,
            )
            reply = Reply(UNEXPECTED_FAILURE, ok=False)
        await send_reply(interaction, reply, deferred_public=public)

    async def complete(
        self, command: Command, option: Option, current: str, user: str = ""
    ) -> list[app_commands.Choice[str]]:
        """Answer autocomplete from the catalog within AUTOCOMPLETE_TIMEOUT; [] if the catalog is too slow.

        Discord sends one request per keystroke. A request still queued when the same user has typed on, or when
        its time is up, is dropped before it reaches the catalog, so a slow answer never delays the next ones.
        """
        key = (user, command.name, command.sub, option.name)
        ticket = self._typing[key] = self._typing.get(key, 0) + 1
        deadline = time.monotonic() + AUTOCOMPLETE_TIMEOUT

        def answer(core: Core) -> list[tuple[str, str]] | None:
            if self._typing.get(key) != ticket or time.monotonic() > deadline:
                return None
            return autocomplete(
                core, command.name, command.sub, option.name, current or ""
            )

        try:
            pairs = await asyncio.wait_for(
                self.lanes["autocomplete"].run(answer), AUTOCOMPLETE_TIMEOUT
            )
        except TimeoutError:
            log.warning(
                "autocomplete for /%s %s timed out on %r",
                command.name,
                option.name,
                current,
            )
            return []
        finally:
            if self._typing.get(key) == ticket:
                del self._typing[key]
        return to_choices(pairs or [])


def to_choices(pairs: list[tuple[str, str]]) -> list[app_commands.Choice[str]]:
    """Return at most 25 Discord choices, names and values cut to 100 characters, empty ones dropped."""
    choices = []
    for name, value in pairs[:DISCORD_CHOICES_MAX]:
        name, value = (
            shorten(str(name), DISCORD_CHOICE_MAX),
            str(value)[:DISCORD_CHOICE_MAX],
        )
        if name and value:
            choices.append(app_commands.Choice(name=name, value=value))
    return choices


async def send_reply(
    interaction: discord.Interaction, reply: Reply, *, deferred_public: bool
) -> None:
    """Send `reply` as the followup of a deferred interaction; a private reply after a public defer replaces it."""
    payload = render_discord_reply(reply)
    ephemeral = not deferred_public
    if deferred_public and reply.ephemeral and not reply.ok:
        # A refused or failed change should not be shown to the whole channel.
        await interaction.delete_original_response()
        ephemeral = True
    embeds = [discord.Embed.from_dict(e) for e in payload.get("embeds") or []]
    await interaction.followup.send(
        content=payload.get("content") or None,
        embeds=embeds,
        ephemeral=ephemeral,
        allowed_mentions=discord.AllowedMentions.none(),
    )


def minimal_intents() -> discord.Intents:
    """Return the gateway intents the bot needs: guilds only (slash commands need no message content)."""
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


def add_commands(tree: app_commands.CommandTree, client: DigestClient) -> None:
    """Add `/paper` and the `/digest` group to `tree`, generated from the command table.

    Discord's default_member_permissions applies to a whole top-level command, so Manage Channels on `/digest`
    would also hide topics, status, preview and help from members. By default the subscription changes are
    guarded at run time only (`permission_refusal`); `[discord] restrict_digest = true` adds the Discord-side
    default as well, and server admins can always adjust it under Server Settings > Integrations.
    """
    restrict = bool(client.core.settings.section("discord").get("restrict_digest"))
    group = app_commands.Group(
        name="digest",
        description="This channel's weekly paper digest: topics, schedule, preview, status.",
        guild_only=True,  # dm_permission=false for older clients; `contexts` is its replacement
        allowed_contexts=app_commands.AppCommandContext(guild=True),
        default_permissions=discord.Permissions(manage_channels=True)
        if restrict
        else None,
    )
    for command in COMMANDS:
        app_command = make_app_command(command, client)
        if command.sub:
            group.add_command(app_command)
        else:
            tree.add_command(app_command)
    tree.add_command(group)


def make_app_command(command: Command, client: DigestClient) -> app_commands.Command:
    """Build one app command whose typed parameters are the table's options (all strings)."""

    async def callback(interaction: discord.Interaction, **kwargs: Any) -> None:
        await client.run_command(interaction, command, kwargs)

    params = [
        inspect.Parameter(
            "interaction",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=discord.Interaction,
        )
    ]
    ordered = sorted(command.options, key=lambda o: not o.required)
    for option in ordered:
        params.append(
            inspect.Parameter(
                option.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=str if option.required else str | None,
                default=inspect.Parameter.empty if option.required else None,
            )
        )
    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__discord_app_commands_param_description__ = {
        o.name: shorten(o.help) for o in ordered
    }  # type: ignore
    if any(o.kind == "day" for o in ordered):
        callback.__discord_app_commands_param_choices__ = {  # type: ignore[attr-defined]
            o.name: [
                app_commands.Choice(name=label, value=value) for label, value in DAYS
            ]
            for o in ordered
            if o.kind == "day"
        }
    app_command = app_commands.Command(
        name=command.sub or command.name,
        description=shorten(command.help),
        callback=callback,
    )
    for option in ordered:
        if option.kind in AUTOCOMPLETED_KINDS:
            app_command.autocomplete(option.name)(_completer(client, command, option))
    return app_command


def _completer(
    client: DigestClient, command: Command, option: Option
) -> Callable[..., Any]:
    async def complete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await client.complete(command, option, current, str(interaction.user.id))

    return complete


def build_discord_client(core: Core) -> DigestClient:
    """Return the bot client for `core`, with its command tree, talking to `settings.discord_api_url`."""
    use_api_base(core.settings.discord_api_url)
    return DigestClient(core)


def commands_payload(tree: app_commands.CommandTree) -> list[dict[str, Any]]:
    """Return the JSON Discord receives on sync (what `digestbot discord sync --json` prints)."""
    return [command.to_dict(tree) for command in tree.get_commands()]


async def sync_commands(
    client: DigestClient,
    guild_id: int | None,
    *,
    only_if_changed: bool = False,
    clear: bool = False,
) -> list[app_commands.AppCommand] | None:
    """Register the commands with Discord in one guild (for development) or globally.

    With `only_if_changed`, skip the call when the same commands were already synced to that scope (their hash
    is kept in the `meta` table), so restarts do not spend the command-sync rate limit. With `clear`, remove
    the bot's commands from that scope instead (e.g. a dev guild's copies once the commands are global, which
    would otherwise show twice there).
    """
    tree = client.tree
    guild = discord.Object(id=guild_id) if guild_id else None
    if clear:
        tree.clear_commands(guild=guild)
    elif guild is not None:
        tree.copy_global_to(guild=guild)
    payload = [c.to_dict(tree) for c in tree.get_commands(guild=guild)]
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    key = f"discord.commands_sha256.{guild_id or 'global'}"
    lane = shared_lane(client.core, "catalog")
    if only_if_changed and await lane.run(_meta_get, key) == digest:
        log.info("Discord commands unchanged for %s; not syncing", guild_id or "global")
        return None
    synced = await tree.sync(guild=guild)
    await lane.run(_meta_set, key, digest)
    log.info(
        "synced %d Discord commands to %s",
        len(synced),
        f"guild {guild_id}" if guild_id else "all servers",
    )
    return synced


def _meta_get(core: Core, key: str) -> str | None:
    row = core.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def _meta_set(core: Core, key: str, value: str) -> None:
    with core.db.atomic():
        core.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value]
        )


def require_token(core: Core) -> str:
    """Return DISCORD_TOKEN or raise ConfigError naming it."""
    token = core.settings.discord_token
    if not token:
        raise ConfigError(
            "DISCORD_TOKEN is not set; create a bot in the Discord Developer Portal (Bot > Reset Token) and "
            "export DISCORD_TOKEN",
            variable="DISCORD_TOKEN",
        )
    return token


async def login(client: DigestClient, token: str) -> None:
    """Log in over REST; a rejected token becomes a ConfigError naming DISCORD_TOKEN (never the token)."""
    try:
        await client.login(token)
    except discord.LoginFailure:
        await client.close()
        raise ConfigError(
            "Discord rejected DISCORD_TOKEN (401 Unauthorized); copy the bot token again from the Developer Portal",
            variable="DISCORD_TOKEN",
        ) from None


async def run_discord(core: Core) -> None:
    """Run the bot until cancelled: log in, sync commands if they changed, and serve slash commands."""
    token = require_token(core)
    client = build_discord_client(core)
    try:
        await login(client, token)
        await client.connect(reconnect=True)
    finally:
        if not client.is_closed():
            await client.close()
