"""How a digest reaches a channel: the Poster protocol, the console and recording posters, a registry, and pacing.

A Poster posts one Digest (rendering it with its platform's renderer) and returns the platform's
message ref. It raises `digests.errors.DeliveryError(channel=, code=, retry_after=, permanent=)` on
platform errors: `permanent=True` for "bot removed / channel gone / no permission / bad auth",
`retry_after` (seconds) for rate limits. `find_posted` lets the ledger recover after a crash between
posting and recording the ref (Slack: message metadata carrying the digest id; Discord: the nonce
sent with `enforce_nonce` makes a re-post safe, so it may return None).

Slack and Discord posters live in `bot/slack_poster.py` / `bot/discord_poster.py` and are created
lazily by the registry when their tokens are set. Posters that send several messages per digest
(thread replies, follow-ups) should `await rate_limiter(core, platform).acquire(channel_key)` before
each extra message so the per-channel pace holds.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, runtime_checkable

from digests.errors import ConfigError, DeliveryError
from digests.models import Digest

SLACK_CHANNEL_INTERVAL = 1.0
"""Slack chat.postMessage: about one message per second per channel
(https://api.slack.com/methods/chat.postMessage#rate_limiting)."""
DISCORD_GLOBAL_RATE = 50.0
"""Discord: 50 requests per second per bot, globally (https://discord.com/developers/docs/topics/rate-limits)."""
SLACK_GLOBAL_RATE = 10.0
"""Our own cap across a Slack workspace; Slack publishes no global number for chat.postMessage."""


@runtime_checkable
class Poster(Protocol):
    """Posts digests to one platform."""

    platform: str

    async def post(self, channel_key: str, digest: Digest) -> str:
        """Post `digest` to `channel_key`; return the platform's message ref or raise DeliveryError."""
        ...

    async def find_posted(self, channel_key: str, digest_id: str) -> str | None:
        """Return the ref of an earlier post of `digest_id` in `channel_key`, or None."""
        ...


class SimulatedCrash(BaseException):
    """Stands for the process dying at a given point; a BaseException so no error handler swallows it."""


def rate_limited(channel: str, retry_after: float, code: str = "ratelimited") -> DeliveryError:
    """Return the DeliveryError a platform's 429 becomes."""
    return DeliveryError(
        f"{channel}: rate limited, retry in {retry_after:g}s", channel=channel, code=code,
        retry_after=retry_after, permanent=False,
    )


def permanent_failure(channel: str, code: str) -> DeliveryError:
    """Return the DeliveryError for a failure that retrying cannot fix (bot removed, channel gone...)."""
    return DeliveryError(f"{channel}: {code}", channel=channel, code=code, retry_after=None, permanent=True)


RETRY_NOTICE = (
    "This week's digest could not be posted yet ({error}). I'll keep trying until {until}; "
    "the admins can see the details with `digestbot status`."
)
STALE_NOTICE = (
    "The digest for {week} could not be posted for a week ({error}), so it was dropped. "
    "The next digest comes as scheduled; the admins can see the details with `digestbot status`."
)
FIX_HINTS = {
    "not_in_channel": "invite the app to this channel with /invite",
    "channel_not_found": "check the channel still exists and the app can see it, or unsubscribe it",
    "is_archived": "unarchive the channel or unsubscribe it",
    "invalid_auth": "set a valid SLACK_BOT_TOKEN and restart digestbot",
    "not_authed": "set SLACK_BOT_TOKEN and restart digestbot",
    "token_revoked": "reinstall the app, set its new SLACK_BOT_TOKEN and restart digestbot",
    "token_expired": "reinstall the app, set its new SLACK_BOT_TOKEN and restart digestbot",
    "account_inactive": "reinstall the app, set its new SLACK_BOT_TOKEN and restart digestbot",
    "missing_scope": "reinstall the app from config/slack-manifest.yaml so it gets the permissions it needs",
    "restricted_action": "ask a workspace admin to let the app post here",
    "restricted_action_read_only_channel": "ask a channel manager to let the app post here, or unsubscribe it",
    "restricted_action_thread_only_channel": "allow top-level posts in this channel, or unsubscribe it",
    "restricted_action_non_threadable_channel": "allow threads in this channel, or unsubscribe it",
    "no_permission": "reinstall the app so its bot token may post here, or unsubscribe this channel",
    "ekm_access_denied": "ask a workspace admin to let the app through the workspace's encryption key policy",
    "team_access_not_granted": "install the app in this workspace (or grant it access from the org), then restart "
                               "digestbot",
    "app_access_restricted": "ask a workspace admin to approve the app",
    "10003": "subscribe an existing channel instead, or unsubscribe this one",
}
"""How to fix a channel refused with a platform code, when the poster's message does not say."""
FIX_DEFAULT = "give the bot back its access to this channel"


def broken_sentence(key: str, exc: DeliveryError) -> str:
    """Return why `key` is broken, in words, with the platform's code and what fixes it.

    Posters put the problem in the message (`the app is not a member of this channel (not_in_channel)`);
    the code alone (`50013`) tells an admin nothing. A message already naming a fix (after `;`) is kept.
    """
    text = (exc.message or "").strip()
    if text.startswith(f"{key}:"):
        text = text[len(key) + 1:].strip()
    code = str(exc.code) if exc.code is not None else ""
    if not text or text == code:
        text = f"the platform refused to post here ({code or 'no reason given'})"
    elif code and code not in text:
        text = f"{text} ({code})"
    if ";" not in text:
        text += f"; {FIX_HINTS.get(code, FIX_DEFAULT)}"
    return text


def error_text(error: str | None) -> str:
    """Return a stored delivery error without the channel-key prefix posters put in front."""
    text = (error or "the platform kept refusing it").strip()
    head, sep, rest = text.partition(": ")
    return rest if sep and head.count(":") >= 1 and " " not in head else text


class RateLimiter:
    """Paces requests: at most `rate` per second overall and one per `channel_interval` seconds per channel.

    Per-channel slots are reserved in call order; the global slot is claimed at the moment of sending.
    """

    def __init__(
        self,
        rate: float | None = DISCORD_GLOBAL_RATE,
        channel_interval: float = SLACK_CHANNEL_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.channel_interval = channel_interval
        self._clock = clock
        self._sleep = sleep
        self._next_global = 0.0
        self._next_channel: dict[str, float] = {}

    async def acquire(self, channel_key: str) -> None:
        """Wait until both the channel and the global pace allow one more request."""
        now = self._clock()
        slot = max(now, self._next_channel.get(channel_key, 0.0))
        self._next_channel[channel_key] = slot + self.channel_interval
        if slot > now:
            await self._sleep(slot - now)
        # The global slot is claimed when the caller actually goes, not reserved ahead, and a late
        # caller makes up at most one interval: a busy loop then costs a little rate, never a burst.
        while self.rate:
            now, interval = self._clock(), 1.0 / self.rate
            if now >= self._next_global:
                self._next_global = max(self._next_global, now - interval) + interval
                break
            await self._sleep(self._next_global - now)
        if len(self._next_channel) > 50_000:
            self._forget_old(self._clock())

    def pause(self, seconds: float, channel_key: str | None = None) -> None:
        """Hold back the channel (or, without one, everything) for `seconds`, e.g. after a 429."""
        until = self._clock() + max(seconds, 0.0)
        if channel_key is None:
            self._next_global = max(self._next_global, until)
        else:
            self._next_channel[channel_key] = max(self._next_channel.get(channel_key, 0.0), until)

    def _forget_old(self, now: float) -> None:
        self._next_channel = {k: v for k, v in self._next_channel.items() if v > now}


def rate_limiter(core: Any, platform: str) -> RateLimiter:
    """Return the process-wide RateLimiter for `platform` (created on first use, rates from `[delivery]`)."""
    limiters: dict[str, RateLimiter] = core.cache.setdefault("rate_limiters", {})
    if platform not in limiters:
        section = core.settings.section("delivery") or {}
        default = DISCORD_GLOBAL_RATE if platform == "discord" else SLACK_GLOBAL_RATE
        rate = float(section.get(f"{platform}_rate", default)) if platform != "console" else None
        interval = float(section.get("channel_interval", SLACK_CHANNEL_INTERVAL)) if platform == "slack" else 0.0
        limiters[platform] = RateLimiter(rate, interval)
    return limiters[platform]


class ConsolePoster:
    """Prints digests as plain text (`console:*` channels, and the bot without any platform token)."""

    platform = "console"

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out
        self._count = itertools.count(1)

    async def post(self, channel_key: str, digest: Digest) -> str:
        """Print the digest under a header line; return `console:<name>#<n>`."""
        from bot.render_text import render_text

        out = self.out or sys.stdout
        out.write(f"--- {channel_key} · {digest.id} ---\n{render_text(digest)}\n")
        out.flush()
        return f"{channel_key}#{next(self._count)}"

    async def find_posted(self, channel_key: str, digest_id: str) -> str | None:
        """Return None: a terminal keeps no history, so a console digest interrupted by a crash prints again."""
        return None


@dataclass
class RecordedPost:
    """One message a RecordingPoster accepted."""

    channel_key: str
    digest: Digest
    ref: str



@dataclass
class RecordingPoster:
    """A fake platform with behaviour, for tests: records posts and plays scripted failures per channel.

    Script entries (consumed one per post call): "ok", "crash_before_post" (the process dies before the
    request), "crash_after_post" (the platform got the message, the process died before the ref came
    back), "lost_reply" (the platform got the message, the answer was lost: a connection error is
    raised), or a DeliveryError to raise (see `rate_limited`, `permanent_failure`).
    """

    platform: str = "slack"
    posts: list[RecordedPost] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    finds: list[tuple[str, str]] = field(default_factory=list)
    script: dict[str, list[Any]] = field(default_factory=dict)

    def will(self, channel_key: str, *behaviours: Any) -> RecordingPoster:
        """Queue behaviours for the next posts to `channel_key`; return self."""
        self.script.setdefault(channel_key, []).extend(behaviours)
        return self

    async def post(self, channel_key: str, digest: Digest) -> str:
        """Record the digest (or play the next scripted failure) and return a ref."""
        self.calls.append((channel_key, digest.id))
        queue = self.script.get(channel_key) or []
        behaviour = queue.pop(0) if queue else "ok"
        if isinstance(behaviour, DeliveryError):
            raise behaviour
        if behaviour == "crash_before_post":
            raise SimulatedCrash(f"crash before posting {digest.id}")
        ref = f"{channel_key}/m{len(self.posts) + 1}"
        self.posts.append(RecordedPost(channel_key, digest, ref))
        if behaviour == "crash_after_post":
            raise SimulatedCrash(f"crash after posting {digest.id}")
        if behaviour == "lost_reply":
            raise DeliveryError(f"{channel_key}: connection lost before the platform answered", channel=channel_key,
                                code="connection_error", retry_after=None, permanent=False)
        return ref

    async def find_posted(self, channel_key: str, digest_id: str) -> str | None:
        """Return the ref of a recorded post of `digest_id` in the channel, like Slack's metadata search."""
        self.finds.append((channel_key, digest_id))
        for post in self.posts:
            if post.channel_key == channel_key and post.digest.id == digest_id:
                return post.ref
        return None

    def posted_ids(self, channel_key: str | None = None) -> list[str]:
        """Return the digest ids posted (to one channel, or all), in order."""
        return [p.digest.id for p in self.posts if channel_key in (None, p.channel_key)]


PosterFactory = Callable[[Any], Poster]


def _console_factory(core: Any) -> Poster:
    return ConsolePoster()


def _slack_factory(core: Any) -> Poster:
    if not core.settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set; export it to post to Slack channels", variable="SLACK_BOT_TOKEN")
    from bot.slack_poster import make_slack_poster

    return make_slack_poster(core)


def _discord_factory(core: Any) -> Poster:
    if not core.settings.discord_token:
        raise ConfigError("DISCORD_TOKEN is not set; export it to post to Discord channels", variable="DISCORD_TOKEN")
    from bot.discord_poster import make_discord_poster

    return make_discord_poster(core)


_FACTORIES: dict[str, PosterFactory] = {
    "console": _console_factory,
    "slack": _slack_factory,
    "discord": _discord_factory,
}


def register_poster(platform: str, factory: PosterFactory | None) -> PosterFactory | None:
    """Register (or with None, remove) the factory that makes `platform`'s poster; return the previous one."""
    previous = _FACTORIES.get(platform)
    if factory is None:
        _FACTORIES.pop(platform, None)
    else:
        _FACTORIES[platform] = factory
    return previous


def get_poster(platform: str, core: Any) -> Poster:
    """Return the poster for `platform`, created on first use and kept in `core.cache`.

    Raise ConfigError when the platform's token is missing or no poster is registered.
    """
    posters: dict[str, Poster] = core.cache.setdefault("posters", {})
    if platform not in posters:
        factory = _FACTORIES.get(platform)
        if factory is None:
            known = ", ".join(sorted(_FACTORIES))
            raise ConfigError(f"No poster for {platform!r} channels; known platforms: {known}", variable=platform)
        posters[platform] = factory(core)
    return posters[platform]
