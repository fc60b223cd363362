"""`digestbot run`: one event loop with one AsyncIOScheduler, the delivery jobs, and the chat apps.

Jobs (from digests.schedule.register_jobs): `fetch` shortly after each arXiv announcement, one
`digest:<channel key>` per active channel, plus a `sweep` every minute that retries open deliveries,
re-runs digest batches that failed, retries a failed arXiv fetch hourly, and re-reads the channels
(so a `digestbot subscribe` run from another process is picked up). At
start, digests missed while the bot was down are delivered once (Deliverer.catch_up).

Slack (`SLACK_BOT_TOKEN`) and Discord (`DISCORD_TOKEN`) apps start when their tokens are set; both
SDKs are imported only then. Without either, only `console:*` channels get digests, printed here.
SLACK_APP_TOKEN or SLACK_SIGNING_SECRET without SLACK_BOT_TOKEN is a ConfigError, not a console-only run.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from digests.errors import ConfigError
from digests.schedule import Calendar, load_calendar, previous_fetch_run, register_jobs

from .deliver import Deliverer, DeliveryResult, arxiv_lane, catalog_lane, on_catalog
from .posting import Poster, get_poster

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60
FETCH_RETRY = timedelta(hours=1)
"""After a failed fetch, the sweep tries again this long after the last attempt (until one works)."""
BATCH_DELAY = 1.0
"""Seconds a digest job waits for others firing at the same moment to join its batch."""


def due_now(core: Any, keys: list[str], now: datetime) -> list[tuple[str, datetime]]:
    """Return (key, latest scheduled run) for the given channels (the digest jobs that just fired)."""
    from digests.channels import get_channel
    from digests.schedule import previous_digest_run

    runs = []
    for key in keys:
        channel = get_channel(core, key)
        if channel is not None and not channel.paused:
            runs.append((key, previous_digest_run(channel, now)))
    return runs


def _level(result: DeliveryResult) -> int:
    """Return the log level for a delivery outcome: a digest that did not go out is a warning."""
    return logging.INFO if result.outcome in ("posted", "recovered", "already", "paused") else logging.WARNING


@dataclass
class Platforms:
    """Which chat platforms this run serves."""

    slack: bool = False
    discord: bool = False

    @classmethod
    def from_settings(cls, settings: Any, *, slack: bool = True, discord: bool = True) -> Platforms:
        """Enable each platform whose token is set, unless switched off. Raise ConfigError when another
        Slack variable is set without SLACK_BOT_TOKEN (a half-done setup, not a console-only run)."""
        if slack and not settings.slack_bot_token:
            for variable, value in (("SLACK_APP_TOKEN", settings.slack_app_token),
                                    ("SLACK_SIGNING_SECRET", settings.slack_signing_secret)):
                if value:
                    raise ConfigError(
                        f"{variable} is set but SLACK_BOT_TOKEN is not; set SLACK_BOT_TOKEN (the Bot User OAuth "
                        f"Token, xoxb-...) or unset {variable}", variable="SLACK_BOT_TOKEN")
        return cls(slack=slack and bool(settings.slack_bot_token), discord=discord and bool(settings.discord_token))

    def describe(self, *, once: bool = False) -> str:
        """Return one line saying what this run serves (Slack says so itself once its tokens are checked)."""
        if not self.slack and not self.discord:
            return ("No SLACK_BOT_TOKEN or DISCORD_TOKEN set: running with console:* channels only "
                    "(their digests are printed here).")
        if once:
            names = " and ".join(n for n, on in (("Slack", self.slack), ("Discord", self.discord)) if on)
            return f"Posting due digests to {names}; console:* digests are printed here."
        parts = (["Serving Discord"] if self.discord else []) + (["connecting to Slack"] if self.slack else [])
        text = "; ".join(parts)
        return f"{text[0].upper()}{text[1:]}; console:* digests are printed here."


def _fetch_now(core: Any, now: datetime) -> Any:
    from digests.fetch import fetch_window

    return fetch_window(core, now)


def is_fetch_due(core: Any, now: datetime, calendar: Calendar) -> bool:
    """Return True when arXiv announced since the last fetch that worked (a failed or interrupted one,
    e.g. Ctrl-C during the fetch, is tried again at start rather than left until the next announcement)."""
    from digests.fetch import last_runs

    good = [run for run in last_runs(core, 20) if run.outcome in ("ok", "empty")]
    return not good or datetime.fromisoformat(good[0].started) < previous_fetch_run(now, calendar)


def is_fetch_retry_due(core: Any, now: datetime, calendar: Calendar) -> bool:
    """Return True when the fetch since the last announcement failed and the last try is FETCH_RETRY old."""
    from digests.fetch import last_runs

    runs = last_runs(core, 1)
    if not runs or now - datetime.fromisoformat(runs[0].started) < FETCH_RETRY:
        return False
    return is_fetch_due(core, now, calendar)


@dataclass
class Runner:
    """The long-running bot: scheduler + deliverer + optional chat apps, on the running loop."""

    core: Any
    platforms: Platforms = field(default_factory=Platforms)
    fetch: Callable[[Any, datetime], Any] = _fetch_now
    deliverer: Deliverer | None = None
    say: Callable[[str], None] = print
    batch_delay: float = BATCH_DELAY

    def __post_init__(self) -> None:
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.deliverer = self.deliverer or Deliverer(self.core, posters=self.poster)
        self.arxiv_lane = arxiv_lane(self.core)
        self.calendar = load_calendar(self.core.settings.section("schedule"))
        self.tasks: list[asyncio.Task[Any]] = []
        self._batch: set[str] = set()
        self._flush: asyncio.Task[dict[str, DeliveryResult]] | None = None
        self._flush_started = False
        self._unfinished: set[str] = set()
        self._fetching = False
        self.stopped = asyncio.Event()

    def poster(self, platform: str) -> Poster:
        """Return the poster for `platform`, refusing platforms this run does not serve."""
        if platform in ("slack", "discord") and not getattr(self.platforms, platform):
            variable = "SLACK_BOT_TOKEN" if platform == "slack" else "DISCORD_TOKEN"
            raise ConfigError(f"{platform} is not enabled in this run (set {variable}, drop --no-{platform})",
                              variable=variable)
        return get_poster(platform, self.core)

    async def run_fetch(self) -> None:
        """The fetch job: fetch the arXiv window on the arXiv lane; failures are recorded by the fetch itself.
        A fetch already running makes this a no-op (the scheduled job and the sweep's retry never overlap)."""
        if self._fetching:
            return
        self._fetching = True
        try:
            report = await self.arxiv_lane.run(self.fetch, self.core.clock())
            run = getattr(report, "run", None)
            log.log(logging.WARNING if getattr(run, "outcome", "ok") == "failed" else logging.INFO,
                    "arXiv fetch: %s %s", getattr(run, "outcome", report), getattr(run, "reason", None) or "")
        except Exception:  # the per-job boundary: fetch_window records the failed run itself
            log.exception("arXiv fetch job failed")
        finally:
            self._fetching = False

    async def run_digest(self, channel_key: str) -> DeliveryResult | None:
        """A channel's digest job. Jobs firing together (many channels share Monday 09:00) join one
        batch, so their digests are built with shared lookups and delivered by one fan-out."""
        self._batch.add(channel_key)
        if self._flush is None or self._flush.done() or self._flush_started:
            self._flush_started = False
            self._flush = asyncio.create_task(self._flush_batch())
        results = await asyncio.shield(self._flush)
        return results.get(channel_key)

    async def _flush_batch(self) -> dict[str, DeliveryResult]:
        assert self.deliverer is not None
        await asyncio.sleep(self.batch_delay)
        self._flush_started = True
        keys, self._batch = sorted(self._batch), set()
        try:
            runs = await on_catalog(self.core, due_now, keys, self.core.clock())
            results = {r.channel: r for r in await self.deliverer.deliver_many(runs)}
        except Exception:  # per-job boundary; the ledger keeps any open intent, the sweep runs the jobs again
            log.exception("digest jobs for %d channel(s) failed; they run again at the next sweep", len(keys))
            self._unfinished.update(keys)
            return {}
        for result in results.values():
            log.log(_level(result), "digest %s: %s %s", result.channel, result.outcome, result.detail or "")
        return results

    async def sweep(self) -> None:
        """Retry open deliveries whose time has come, run digest jobs whose batch failed before any
        intent was recorded (the ledger makes a second run harmless), and pick up channel changes made
        elsewhere."""
        assert self.deliverer is not None
        try:
            await self.deliverer.recover()
            if self._unfinished:
                keys, self._unfinished = sorted(self._unfinished), set()
                await asyncio.gather(*(self.run_digest(key) for key in keys))
            await on_catalog(self.core, self._refresh)
            if not self._fetching and await on_catalog(self.core, is_fetch_retry_due, self.core.clock(), self.calendar):
                self.tasks.append(asyncio.create_task(self.run_fetch(), name="fetch-retry"))
        except Exception:
            log.exception("delivery sweep failed")

    def _refresh(self, core: Any) -> Any:
        refresh = core.cache.get("schedule_refresh")
        return refresh(core) if callable(refresh) else None

    async def start(self, *, fetch_if_due: bool = True) -> None:
        """Register the jobs, start the scheduler and the chat apps, and kick off the start-up catch-up."""
        await on_catalog(self.core, lambda core: register_jobs(
            self.scheduler, core, on_fetch=self.run_fetch, on_digest=self.run_digest, calendar=self.calendar))
        self.scheduler.add_job(self.sweep, "interval", seconds=SWEEP_SECONDS, id="sweep", coalesce=True,
                               max_instances=1)
        self.scheduler.start()
        self.say(self.platforms.describe())
        self.say(f"{len(self.scheduler.get_jobs()) - 2} digest job(s) scheduled; press Ctrl-C to stop.")
        for name, runner in self._platform_runners():
            self.tasks.append(asyncio.create_task(runner(self.core), name=name))
        self.tasks.append(asyncio.create_task(self.catch_up(fetch_if_due), name="catch-up"))

    def _platform_runners(self) -> list[tuple[str, Callable[[Any], Awaitable[Any]]]]:
        runners: list[tuple[str, Callable[[Any], Awaitable[Any]]]] = []
        if self.platforms.slack:
            from bot.slack_app import run_slack

            runners.append(("slack", partial(run_slack, on_ready=self._slack_ready)))
        if self.platforms.discord:
            from bot.discord_app import run_discord

            runners.append(("discord", run_discord))
        return runners

    def _slack_ready(self, info: dict[str, Any]) -> None:
        port = f" on port {info['port']}" if info.get("mode") == "http" and info.get("port") else ""
        self.say(f"Slack: {info.get('mode')} mode, workspace {info.get('team_id')}{port}")

    async def catch_up(self, fetch_if_due: bool = True) -> list[DeliveryResult]:
        """Fetch if arXiv announced since the last fetch, then deliver what is due (once each)."""
        assert self.deliverer is not None
        if fetch_if_due and await on_catalog(self.core, is_fetch_due, self.core.clock(), self.calendar):
            await self.run_fetch()
        results = await self.deliverer.catch_up()
        for result in results:
            if result.outcome not in ("already",):
                log.log(_level(result), "catch-up %s: %s %s", result.channel, result.outcome, result.detail or "")
        return results

    async def wait(self) -> None:
        """Wait until stopped, or until a chat app exits (its error is re-raised)."""
        platform_tasks = [t for t in self.tasks if t.get_name() in ("slack", "discord")]
        stop = asyncio.create_task(self.stopped.wait())
        done, _ = await asyncio.wait([stop, *platform_tasks], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        for task in done:
            if task is not stop and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def stop(self) -> None:
        """Stop the scheduler and the chat apps, and close the lanes."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.arxiv_lane.close()
        catalog_lane(self.core).close()


async def run_bot(core: Any, *, once: bool = False, platforms: Platforms | None = None, fetch: bool = True,
                  say: Callable[[str], None] = print) -> list[DeliveryResult]:
    """Run the bot until Ctrl-C / SIGTERM (or, with `once`, deliver what is due and return the results)."""
    runner = Runner(core, platforms or Platforms(), say=say)
    if once:
        try:
            say(runner.platforms.describe(once=True))
            return await runner.catch_up(fetch_if_due=fetch)
        finally:
            await runner.stop()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, runner.stopped.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / not supported here
            pass
    try:
        await runner.start(fetch_if_due=fetch)
        await runner.wait()
    finally:
        say("Stopping…")
        await runner.stop()
    return []
