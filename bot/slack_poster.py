"""Post digests to Slack: chat.postMessage with Block Kit and a text fallback, overflow as thread replies.

Exactly once: the main message carries Slack message metadata
`{"event_type": "digestbot_digest", "event_payload": {"digest_id": ...}}`
(https://docs.slack.dev/messaging/message-metadata). After a crash between posting and recording the ref,
the ledger calls `find_posted`, which reads the channel's recent history with `include_all_metadata` and finds
the earlier post instead of sending a second one. Thread replies carry the same metadata plus their part number,
so a crash between the main message and its last reply is finished too: `find_posted` reads the thread
(conversations.replies) and posts only the parts missing from it. This module is the single source of truth for
the metadata: whatever metadata the renderer puts in its payloads is not sent.

Retries: slack_sdk's own retry handlers are turned off for this client (`retry_handlers=[]`). A retried
chat.postMessage after a dropped connection may post twice, and the ledger already retries with a
`find_posted` check first, so every error surfaces once, as a DeliveryError, and the ledger decides.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from digests.errors import ConfigError, DeliveryError

if TYPE_CHECKING:
    from digests.models import Digest
    from digests.service import Core

log = logging.getLogger(__name__)

METADATA_EVENT_TYPE = "digestbot_digest"
HISTORY_PAGE_SIZE = 200
"""conversations.history returns at most 200 messages a page (https://docs.slack.dev/reference/methods/conversations.history)."""
HISTORY_PAGES = 3
"""How far back find_posted looks: 600 top-level messages covers a crash-and-restart on a busy channel."""
REPLY_RETRIES = 3
"""Thread replies retried in place on 429: the main message is already out, so the ledger must not repost."""

PERMANENT_ERRORS: dict[str, str] = {
    "not_in_channel": "the app is not a member of this channel",
    "channel_not_found": "the channel no longer exists or the app can't see it",
    "is_archived": "the channel is archived",
    "invalid_auth": "Slack refused the bot token",
    "not_authed": "no bot token was sent",
    "account_inactive": "the app's bot user was deactivated or the app uninstalled",
    "token_revoked": "the bot token was revoked (the app was removed)",
    "token_expired": "the bot token expired",
    "missing_scope": "the app lacks a permission it needs (reinstall it from the manifest)",
    "restricted_action": "a workspace admin restricted posting in this channel",
    "ekm_access_denied": "the workspace's encryption keys block the app",
    "team_access_not_granted": "the app is not installed for this workspace",
    "no_permission": "the bot token has no permission to post here",
    "restricted_action_read_only_channel": "the channel is read-only for the app",
    "restricted_action_thread_only_channel": "the channel only allows replies in threads",
    "restricted_action_non_threadable_channel": "the channel does not allow threads, where long digests continue",
    "app_access_restricted": "a workspace admin restricted the app",
}
"""Slack error codes that retrying can't fix; the channel is marked broken with the reason
(codes from tests/fixtures/realdata/slack_docs_chat.postMessage_error_codes.json)."""
RATE_LIMIT_ERRORS = ("ratelimited", "rate_limited")
BLOCK_ERRORS = ("invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long")
"""Slack refused our Block Kit itself: the same payload would be refused on every retry, so the digest goes out
once as plain text instead (our bug, logged as an error, never the channel's fault)."""
TEXT_ONLY_MAX = 3900
"""Slack truncates `text` past 4,000 characters (https://docs.slack.dev/reference/methods/chat.postMessage)."""
SLACK_FAILURES = (SlackApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError)
"""What a Web API call raises when Slack (or the network) says no; anything else is our bug and propagates."""


def slack_channel_id(channel_key: str) -> str:
    """Return the Slack channel id from `slack:<team>:<channel>`."""
    parts = channel_key.split(":")
    if len(parts) != 3 or parts[0] != "slack" or not parts[2]:
        raise DeliveryError(
            f"{channel_key} is not a Slack channel key (slack:<team>:<channel>)",
            channel=channel_key, code="bad_channel_key", retry_after=None, permanent=True,
        )
    return parts[2]


def digest_metadata(digest_id: str, part: int = 0, text_only: bool = False) -> dict[str, Any]:
    """Return the message metadata that marks a digest message (part 0 is the main message).

    `text_only` marks a main message posted as plain text after Slack refused its blocks: it has no thread.
    """
    payload: dict[str, Any] = {"digest_id": digest_id}
    if part:
        payload["part"] = part
    if text_only:
        payload["text_only"] = True
    return {"event_type": METADATA_EVENT_TYPE, "event_payload": payload}


def text_only_message(digest: "Digest") -> dict[str, Any]:
    """Return the whole digest as one plain-text message (mrkdwn-escaped, cut to TEXT_ONLY_MAX)."""
    import html

    from bot.render_text import fit, render_text

    return {"text": fit(render_text(digest), TEXT_ONLY_MAX, lambda t: html.escape(t, quote=False)), "blocks": None}


def delivery_error(channel_key: str, exc: BaseException) -> DeliveryError:
    """Translate a Slack or network failure into a DeliveryError the ledger understands (no token in it)."""
    if not isinstance(exc, SlackApiError):
        return DeliveryError(
            f"Slack could not be reached ({type(exc).__name__}); the digest will be retried",
            channel=channel_key, code="connection_error", retry_after=None, permanent=False,
        )
    status = exc.response.status_code
    code = str(exc.response.get("error") or f"http_{status}")
    if status == 429 or code in RATE_LIMIT_ERRORS:
        retry_after = _retry_after(exc)
        return DeliveryError(
            f"Slack is rate-limiting posts; retrying in {retry_after:g}s",
            channel=channel_key, code="ratelimited", retry_after=retry_after, permanent=False,
        )
    if code in PERMANENT_ERRORS:
        return DeliveryError(
            f"{PERMANENT_ERRORS[code]} ({code})", channel=channel_key, code=code, retry_after=None, permanent=True
        )
    return DeliveryError(
        f"Slack refused the post ({code}); it will be retried",
        channel=channel_key, code=code, retry_after=None, permanent=False,
    )


def _retry_after(exc: SlackApiError) -> float:
    headers = {k.lower(): v for k, v in (exc.response.headers or {}).items()}
    value = headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(float(value), 0.0) if value is not None else 1.0
    except ValueError:
        return 1.0


class SlackPoster:
    """The ledger's Poster for `slack:*` channels."""

    platform = "slack"

    def __init__(self, core: "Core", client: AsyncWebClient | None = None) -> None:
        self.core = core
        if client is None:
            token = core.settings.slack_bot_token
            if not token:
                raise ConfigError(
                    "SLACK_BOT_TOKEN is not set; export it to post digests to Slack channels",
                    variable="SLACK_BOT_TOKEN",
                )
            client = AsyncWebClient(token=token, base_url=core.settings.slack_api_url, retry_handlers=[])
        self.client = client

    async def post(self, channel_key: str, digest: "Digest") -> str:
        """Post the digest (main message, then thread replies); return `<channel id>:<ts>` of the main one."""
        from bot.render_slack import render_slack

        channel = slack_channel_id(channel_key)
        messages = render_slack(digest)
        try:
            try:
                first = await self._post_one(channel, messages[0], digest.id, 0, None)
            except SlackApiError as exc:
                if exc.response.get("error") not in BLOCK_ERRORS:
                    raise
                log.error("digest %s: Slack refused its blocks (%s); posting it as plain text", digest.id,
                          exc.response.get("error"))
                first = await self._post_one(channel, text_only_message(digest), digest.id, 0, None, text_only=True)
                return f"{channel}:{first}"
        except SLACK_FAILURES as exc:
            raise delivery_error(channel_key, exc) from None
        for part, message in enumerate(messages[1:], start=1):
            await self._post_reply(channel_key, channel, message, digest.id, part, first)
        return f"{channel}:{first}"

    async def _post_one(self, channel: str, message: dict[str, Any], digest_id: str, part: int,
                        thread_ts: str | None, text_only: bool = False) -> str:
        response = await self.client.chat_postMessage(
            channel=channel,
            text=message["text"],
            blocks=message.get("blocks"),
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            metadata=digest_metadata(digest_id, part, text_only),
        )
        return str(response["ts"])

    async def _post_reply(self, channel_key: str, channel: str, message: dict[str, Any], digest_id: str, part: int,
                          thread_ts: str) -> None:
        """Post one overflow message into the thread; once the main message is out, never raise."""
        from bot.posting import rate_limiter

        limiter = rate_limiter(self.core, self.platform)
        code = "unknown"
        for _attempt in range(REPLY_RETRIES + 1):
            await limiter.acquire(channel_key)
            try:
                await self._post_one(channel, message, digest_id, part, thread_ts)
                return
            except SLACK_FAILURES as exc:
                error = delivery_error(channel_key, exc)
                code, retry_after = error.context["code"], error.context["retry_after"]
                if retry_after is None:
                    break
                limiter.pause(float(retry_after), channel_key)
        log.error("digest %s: thread reply %d to %s was not posted (%s)", digest_id, part, channel_key, code)

    async def find_posted(self, channel_key: str, digest_id: str) -> str | None:
        """Return `<channel id>:<ts>` of an earlier post of `digest_id` in the channel's recent history, or None."""
        channel = slack_channel_id(channel_key)
        cursor: str | None = None
        for _page in range(HISTORY_PAGES):
            try:
                response = await self.client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=HISTORY_PAGE_SIZE, cursor=cursor
                )
            except SLACK_FAILURES as exc:
                raise delivery_error(channel_key, exc) from None
            for message in response.get("messages") or []:
                if is_digest_message(message, digest_id):
                    if not message["metadata"]["event_payload"].get("text_only"):
                        await self._resume_thread(channel_key, channel, digest_id, str(message["ts"]))
                    return f"{channel}:{message['ts']}"
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not response.get("has_more") or not cursor:
                break
        return None

    async def _resume_thread(self, channel_key: str, channel: str, digest_id: str, thread_ts: str) -> None:
        """Post the thread replies a crash left unposted under the found main message (parts already there are kept).

        The ledger stored the digest with the intent, and rendering is deterministic, so the parts are the same
        ones the first attempt was posting.
        """
        from bot.deliver import on_catalog
        from bot.render_slack import render_slack
        from digests.ledger import stored_digest

        digest = await on_catalog(self.core, stored_digest, digest_id)
        messages = render_slack(digest) if digest is not None else []
        if len(messages) < 2:
            return
        try:
            present = await self._posted_parts(channel, thread_ts, digest_id)
        except SLACK_FAILURES as exc:
            # The main message is out, so the digest counts as delivered; replies stay best effort, as in post().
            log.error("digest %s: could not read its thread in %s (%s); missing replies not posted",
                      digest_id, channel_key, delivery_error(channel_key, exc).context["code"])
            return
        for part, message in enumerate(messages[1:], start=1):
            if part not in present:
                log.info("digest %s: posting thread reply %d a crash left out", digest_id, part)
                await self._post_reply(channel_key, channel, message, digest_id, part, thread_ts)

    async def _posted_parts(self, channel: str, thread_ts: str, digest_id: str) -> set[int]:
        """Return the part numbers of the digest's thread replies already in the thread."""
        parts: set[int] = set()
        cursor: str | None = None
        for _page in range(HISTORY_PAGES):
            response = await self.client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=HISTORY_PAGE_SIZE, cursor=cursor
            )
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == METADATA_EVENT_TYPE and payload.get("digest_id") == digest_id:
                    parts.add(int(payload.get("part") or 0))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not response.get("has_more") or not cursor:
                break
        return parts


def is_digest_message(message: dict[str, Any], digest_id: str) -> bool:
    """Return True if a history message is the main message of `digest_id`."""
    metadata = message.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    return (
        metadata.get("event_type") == METADATA_EVENT_TYPE
        and payload.get("digest_id") == digest_id
        and not payload.get("part")
    )


def make_slack_poster(core: "Core") -> SlackPoster:
    """Return the SlackPoster for `core` (registered for the `slack` platform in bot.posting)."""
    return SlackPoster(core)
