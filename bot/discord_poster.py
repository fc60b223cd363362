"""Post weekly digests to Discord channels over the REST API: the Discord `Poster` for the delivery ledger.

Why httpx and not discord.py's `HTTPClient`: the poster needs an explicit, bounded error policy. discord.py retries
429s and 5xx itself (up to five times, sleeping inside `request()`), which hides how many invalid requests we
made and cannot be given an injected clock or sleep; the ledger (bot/deliver.py) wants a `DeliveryError` with
`retry_after`/`permanent` instead, and Discord bans a bot IP after 10,000 401/403/429 answers in 10 minutes
(https://discord.com/developers/docs/topics/rate-limits#invalid-request-limit). So this module talks to
`settings.discord_api_url` with httpx, retries only 429 and 5xx, a bounded number of times, and stops sending
altogether when too many invalid answers pile up. It needs no gateway login.

Exactly once: each message carries a nonce derived from the digest id and part index, with `enforce_nonce`, so
a retry within Discord's nonce window ("the past few minutes") returns the message already created instead of a
second one. After a longer crash that window has passed; `find_posted` therefore also looks through the channel's
recent history for the digest's reference mark (`ref <hash> k/n`) in each message's last embed footer, and a
digest cut short between its messages is completed by posting only the missing ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx

from digests.errors import ConfigError, DeliveryError

from .render_discord import (
    ALLOWED_MENTIONS_NONE,
    DISCORD_AUTHOR_NAME_MAX,
    DISCORD_CONTENT_MAX,
    DISCORD_EMBED_DESCRIPTION_MAX,
    DISCORD_EMBED_TITLE_MAX,
    DISCORD_EMBEDS_MAX,
    DISCORD_EMBEDS_TOTAL_MAX,
    DISCORD_FIELD_NAME_MAX,
    DISCORD_FIELD_VALUE_MAX,
    DISCORD_FIELDS_MAX,
    DISCORD_FOOTER_TEXT_MAX,
)

if TYPE_CHECKING:
    from digests.models import Digest
    from digests.service import Core

log = logging.getLogger(__name__)

DISCORD_NONCE_MAX = 25
"""A message nonce is an integer or a string of at most 25 characters (create-message docs)."""

MAX_RATE_LIMIT_RETRIES = 2
"""429s retried inside one post; more and the ledger gets a DeliveryError with retry_after."""
MAX_INLINE_WAIT = 10.0
"""Seconds we are willing to wait inside one post; a longer Retry-After is handed back to the ledger."""
MAX_SERVER_RETRIES = 2
"""5xx and connection errors retried (after 1 s, then 2 s)."""
INVALID_WINDOW = 600.0
INVALID_BUDGET = 1000
"""We stop sending once 1,000 401/403/429 answers arrive within 10 minutes: a tenth of Discord's ban threshold."""
HISTORY_LIMIT = 50
"""Messages `find_posted` reads back from a channel (one GET; needs Read Message History)."""
GLOBAL_CODE = "global"
"""DeliveryError code of a global 429: the ledger (bot.deliver.GLOBAL_LIMIT_CODES) then pauses every channel."""

Sleep = Callable[[float], Awaitable[None]]


def digest_nonce(digest_id: str, part: int) -> str:
    """Return the <= 25-character nonce for part `part` of digest `digest_id` (stable across restarts)."""
    return hashlib.sha256(f"{digest_id}#{part}".encode()).hexdigest()[
        :DISCORD_NONCE_MAX
    ]


def digest_mark(digest_id: str) -> str:
    """Return the short reference mark put in each message's footer so `find_posted` can find the digest."""
    return "ref " + hashlib.sha256(digest_id.encode()).hexdigest()[:10]


def part_mark(digest_id: str, part: int, parts: int) -> str:
    """Return the footer mark of message `part` (0-based) of `parts`, e.g. `ref 1a2b3c4d5e 2/3`."""
    return f"{digest_mark(digest_id)} {part + 1}/{parts}"


def find_parts(
    history: list[dict[str, Any]], digest_id: str
) -> tuple[dict[int, str], int]:
    """Return ({part index: message id}, parts expected) for the digest's marked bot messages in `history`."""
    pattern = re.compile(re.escape(digest_mark(digest_id)) + r" (\d+)/(\d+)")
    found: dict[int, str] = {}
    expected = 0
    for message in history:
        if not (message.get("author") or {}).get("bot"):
            continue
        for embed in message.get("embeds") or []:
            match = pattern.search((embed.get("footer") or {}).get("text") or "")
            if match:
                found.setdefault(int(match.group(1)) - 1, str(message["id"]))
                expected = max(expected, int(match.group(2)))
    return found, expected


def channel_id_from_key(channel_key: str) -> str:
    """Return the Discord channel id in `discord:<guild>:<channel>`; raise a permanent DeliveryError otherwise."""
    platform, _, rest = channel_key.partition(":")
    channel_id = rest.rsplit(":", 1)[-1]
    if platform != "discord" or not channel_id.isdigit():
        raise DeliveryError(
            f"{channel_key!r} is not a Discord channel key (discord:<guild>:<channel>)",
            channel=channel_key,
            code="bad_channel_key",
            retry_after=None,
            permanent=True,
        )
    return channel_id


def validate_message(message: dict[str, Any]) -> None:
    """Raise ValueError when a rendered message breaks a Discord limit (checked with discord.py's own Embed)."""
    import discord

    content = message.get("content") or ""
    embeds = message.get("embeds") or []
    if len(content) > DISCORD_CONTENT_MAX:
        raise ValueError(
            f"content is {len(content)} characters; Discord allows {DISCORD_CONTENT_MAX}"
        )
    if len(embeds) > DISCORD_EMBEDS_MAX:
        raise ValueError(f"{len(embeds)} embeds; Discord allows {DISCORD_EMBEDS_MAX}")
    total = 0
    for data in embeds:
        embed = discord.Embed.from_dict(data)
        total += len(embed)
        _check_embed_parts(embed)
    if total > DISCORD_EMBEDS_TOTAL_MAX:
        raise ValueError(
            f"embeds hold {total} characters; Discord allows {DISCORD_EMBEDS_TOTAL_MAX} per message"
        )


def _check_embed_parts(embed: Any) -> None:
    checks = [
        ("title", len(embed.title or ""), DISCORD_EMBED_TITLE_MAX),
        ("description", len(embed.description or ""), DISCORD_EMBED_DESCRIPTION_MAX),
        ("fields", len(embed.fields), DISCORD_FIELDS_MAX),
        ("footer", len(embed.footer.text or ""), DISCORD_FOOTER_TEXT_MAX),
        ("author", len(embed.author.name or ""), DISCORD_AUTHOR_NAME_MAX),
    ]
    checks += [
        ("field name", len(f.name or ""), DISCORD_FIELD_NAME_MAX) for f in embed.fields
    ]
    checks += [
        ("field value", len(f.value or ""), DISCORD_FIELD_VALUE_MAX) for f in embed.fields
    ]
    for what, size, limit in checks:
        if size > limit:
            raise ValueError(f"embed {what} is {size} long; Discord allows {limit}")


def add_mark(message: dict[str, Any], mark: str) -> dict[str, Any]:
    """Return `message` with `mark` appended to its last embed's footer, if that stays within the limits."""
    embeds = [dict(e) for e in message.get("embeds") or []]
    if not embeds:
        return message
    footer = dict(embeds[-1].get("footer") or {})
    footer["text"] = f"{footer['text']} \u00b7 {mark}" if footer.get("text") else mark
    embeds[-1]["footer"] = footer
    marked = {**message, "embeds": embeds}
    try:
        validate_message(marked)
    except ValueError:
        return message
    return marked


class InvalidRequestBudget:
    """Count 401/403/429 answers in a sliding 10-minute window and say when to stop sending."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, budget: int = INVALID_BUDGET
    ) -> None:
        self.clock = clock
        self.budget = budget
        self.times: deque[float] = deque()

    def record(self) -> None:
        """Count one invalid answer now."""
        self.times.append(self.clock())

    def exhausted_for(self) -> float:
        """Return seconds until we may send again (0.0 when under budget)."""
        now = self.clock()
        while self.times and now - self.times[0] > INVALID_WINDOW:
            self.times.popleft()
        if len(self.times) < self.budget:
            return 0.0
        return INVALID_WINDOW - (now - self.times[0])

    @property
    def count(self) -> int:
        """Return how many invalid answers fall in the current window."""
        self.exhausted_for()
        return len(self.times)


class DiscordPoster:
    """Post rendered digests with nonces and bounded retries; raise DeliveryError the ledger understands."""

    platform = "discord"

    def __init__(
        self,
        token: str,
        api_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 15.0,
        pace: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        from discord import __version__ as discord_version

        headers = {
            "Authorization": f"Bot {token}",
            # Discord asks bots for "DiscordBot ($url, $versionNumber)" (reference#user-agent).
            "User-Agent": f"DiscordBot (https://github.com/digestbot/digestbot, {discord_version}) digestbot",
        }
        self.client = httpx.AsyncClient(
            base_url=api_url.rstrip("/") + "/",
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        self.sleep = sleep
        self.clock = clock
        self.invalid = InvalidRequestBudget(clock)
        self.global_until = 0.0
        self.route_until: dict[str, float] = {}
        self.resume: dict[str, dict[int, str]] = {}
        """Digest id -> {part index: message id} already posted, so a retry sends only the missing parts."""
        self.pace = pace
        """Awaited before each follow-up message (the delivery pacer); the main message is paced by the caller."""
        self.disabled: str | None = None
        """Set after a 401: the token is wrong, so every later post fails at once without a request."""

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.aclose()

    async def post(self, channel_key: str, digest: Digest) -> str:
        """Render `digest` and post it to the channel; return the main message's id."""
        from bot.render_discord import render_discord

        return await self.post_rendered(channel_key, digest.id, render_discord(digest))

    async def post_rendered(
        self, channel_key: str, digest_id: str, messages: list[dict[str, Any]]
    ) -> str:
        """Post already-rendered messages (main, then follow-ups) for `digest_id`; return the main message's id."""
        channel_id = channel_id_from_key(channel_key)
        if not messages:
            raise DeliveryError(
                "the renderer produced no message",
                channel=channel_key,
                code="empty",
                permanent=False,
            )
        for message in messages:
            try:
                validate_message(message)
            except ValueError as exc:
                raise DeliveryError(
                    f"digest for {channel_key} breaks a Discord limit: {exc}",
                    channel=channel_key,
                    code="invalid_embed",
                    retry_after=None,
                    permanent=False,
                ) from None
        done = self.resume.setdefault(digest_id, {})
        for part, message in enumerate(messages):
            if part in done:
                continue  # posted by an earlier, interrupted call (or found by find_posted)
            if part and self.pace is not None:
                await self.pace(channel_key)
            body = self._body(message, digest_id, part, len(messages))
            data = await self._send(
                channel_key, "POST", f"channels/{channel_id}/messages", json=body
            )
            done[part] = str(data["id"])
        ids = [done[part] for part in range(len(messages))]
        del self.resume[digest_id]
        log.info("posted digest %s to %s as %s", digest_id, channel_key, ",".join(ids))
        return ids[0]

    async def find_posted(self, channel_key: str, digest_id: str) -> str | None:
        """Return the id of the digest's main message if all its messages are among the recent ones, else None.

        Within a few minutes of a crash the nonce alone prevents a duplicate; this catches the longer case as long
        as fewer than HISTORY_LIMIT messages were posted in the channel since. Without Read Message History
        Discord answers an empty list. When the history cannot be read at all this returns None and leaves the
        error to the post that follows, which reports it to the ledger properly (only the nonce then guards).
        """
        channel_id = channel_id_from_key(channel_key)
        path = f"channels/{channel_id}/messages"
        try:
            history = await self._send(
                channel_key, "GET", path, params={"limit": HISTORY_LIMIT}
            )
        except DeliveryError as exc:
            log.warning(
                "could not read %s history to find %s: %s", channel_key, digest_id, exc
            )
            return None
        found, expected = find_parts(history, digest_id)
        if 0 in found and len(found) >= expected:
            self.resume.pop(digest_id, None)
            return found[0]
        if found:
            # Some parts made it before a crash: the post that follows sends only the missing ones.
            self.resume.setdefault(digest_id, {}).update(found)
        return None

    def _body(
        self, message: dict[str, Any], digest_id: str, part: int, parts: int
    ) -> dict[str, Any]:
        message = add_mark(message, part_mark(digest_id, part, parts))
        return {
            "content": message.get("content") or "",
            "embeds": message.get("embeds") or [],
            "allowed_mentions": ALLOWED_MENTIONS_NONE,
            "nonce": digest_nonce(digest_id, part),
            "enforce_nonce": True,
        }

    async def _send(
        self, channel_key: str, method: str, path: str, **kwargs: Any
    ) -> Any:
        """Make one logical request with the bounded retry policy; return the decoded JSON body."""
        route = path.split("/")[1]
        rate_limited = server_errors = 0
        while True:
            await self._wait_for_limits(channel_key, route)
            try:
                response = await self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                server_errors += 1
                if server_errors > MAX_SERVER_RETRIES:
                    raise self._error(
                        channel_key, f"Discord could not be reached: {exc}", "network"
                    ) from None
                await self.sleep(float(server_errors))
                continue
            self._note_bucket(route, response)
            if response.status_code < 300:
                return response.json() if response.content else None
            if response.status_code == 429:
                rate_limited += 1
                await self._on_rate_limited(channel_key, route, response, rate_limited)
                continue
            if response.status_code >= 500:
                server_errors += 1
                if server_errors > MAX_SERVER_RETRIES:
                    raise self._error(
                        channel_key,
                        f"Discord answered {response.status_code}",
                        response.status_code,
                    )
                await self.sleep(float(server_errors))
                continue
            raise self._client_error(channel_key, response)

    async def _wait_for_limits(self, channel_key: str, route: str) -> None:
        if self.disabled:
            raise self._error(channel_key, self.disabled, 401)
        budget_wait = self.invalid.exhausted_for()
        if budget_wait:
            raise self._error(
                channel_key,
                f"paused: {self.invalid.count} invalid Discord answers in 10 minutes",
                "invalid_request_budget",
                retry_after=budget_wait,
            )
        now = self.clock()
        wait = max(self.global_until, self.route_until.get(route, 0.0)) - now
        if wait > MAX_INLINE_WAIT:
            code = GLOBAL_CODE if self.global_until - now >= wait else 429
            raise self._error(
                channel_key, "Discord asked us to wait", code, retry_after=wait
            )
        if wait > 0:
            await self.sleep(wait)

    def _note_bucket(self, route: str, response: httpx.Response) -> None:
        """Remember an exhausted per-route bucket so the next post to that channel waits instead of hitting 429."""
        if response.headers.get("X-RateLimit-Remaining") == "0":
            reset_after = _float(response.headers.get("X-RateLimit-Reset-After"))
            if reset_after is not None:
                self.route_until[route] = self.clock() + reset_after

    async def _on_rate_limited(
        self, channel_key: str, route: str, response: httpx.Response, attempt: int
    ) -> None:
        body = _json(response)
        headers = response.headers
        retry_after = _float(body.get("retry_after"))
        if retry_after is None:
            retry_after = (
                _float(headers.get("Retry-After"))
                or _float(headers.get("X-RateLimit-Reset-After"))
                or 1.0
            )
        is_global = (
            headers.get("X-RateLimit-Global", "").lower() == "true"
            or body.get("global") is True
        )
        # 429s on a shared resource do not count towards the invalid-request limit (rate-limits docs).
        if headers.get("X-RateLimit-Scope") != "shared":
            self.invalid.record()
        until = self.clock() + retry_after
        if is_global:
            self.global_until = max(self.global_until, until)
        else:
            self.route_until[route] = max(self.route_until.get(route, 0.0), until)
        log.warning(
            "Discord 429 for %s (global=%s, scope=%s, retry_after=%.2fs, attempt %d)",
            channel_key,
            is_global,
            headers.get("X-RateLimit-Scope"),
            retry_after,
            attempt,
        )
        if attempt > MAX_RATE_LIMIT_RETRIES or retry_after > MAX_INLINE_WAIT:
            raise self._error(
                channel_key,
                "Discord is rate-limiting us",
                GLOBAL_CODE if is_global else 429,
                retry_after=retry_after,
            )

    def _client_error(
        self, channel_key: str, response: httpx.Response
    ) -> DeliveryError:
        body = _json(response)
        status = response.status_code
        code = body.get("code") or status
        discord_message = body.get("message") or response.reason_phrase
        if status in (401, 403):
            self.invalid.record()
        if status == 401:
            self.disabled = "Discord rejected DISCORD_TOKEN (401); set a valid bot token and restart"
            return self._error(channel_key, self.disabled, 401)
        if status in (403, 404):
            reason = PERMANENT_REASONS.get(
                code, f"Discord refused: {discord_message} ({code})"
            )
            return self._error(channel_key, reason, code, permanent=True)
        return self._error(
            channel_key,
            f"Discord rejected the message: {discord_message} ({code})",
            code,
        )

    @staticmethod
    def _error(
        channel_key: str,
        reason: str,
        code: object,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> DeliveryError:
        return DeliveryError(
            f"{channel_key}: {reason}",
            channel=channel_key,
            code=code,
            retry_after=retry_after,
            permanent=permanent,
        )


PERMANENT_REASONS: dict[object, str] = {
    50001: "the bot cannot see this channel (Missing Access, 50001); invite it again or give it View Channel here",
    50013: "the bot lacks a permission here (Missing Permissions, 50013); give it Send Messages and Embed Links",
    10003: "the channel no longer exists (Unknown Channel, 10003)",
}
"""The channel-level refusals that mark a channel broken until someone fixes it."""


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def make_discord_poster(core: Core) -> DiscordPoster:
    """Return a DiscordPoster for the core's settings; raise ConfigError when DISCORD_TOKEN is missing."""
    token = core.settings.discord_token
    if not token:
        raise ConfigError(
            "DISCORD_TOKEN is not set; export your bot token (Developer Portal > Bot > Reset Token) to post to Discord",
            variable="DISCORD_TOKEN",
        )
    from bot.posting import rate_limiter

    return DiscordPoster(
        token, core.settings.discord_api_url, pace=rate_limiter(core, "discord").acquire
    )
