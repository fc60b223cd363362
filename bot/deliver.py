"""Deliver due digests through the ledger: many channels in parallel, paced, retried, exactly once.

A channel that refuses a post permanently (bot removed, permission missing, channel gone) is marked
broken with a sentence naming the problem and the fix, and is never retried in between; its next
scheduled run makes one attempt, so a fixed channel gets its digests again without anyone clearing
the mark (a success clears it). Failures the channel can be told about are told to it: a digest that
could not be built, one whose retries ran out, and one dropped as more than a week late.

Only one live process delivers a digest at a time: the ledger row is claimed (a lease, see digests.ledger)
with the intent or before a pending/posted row is recovered, extended before each post attempt and each
in-place wait, and released when the delivery ends. A row another live process holds is left alone
("leased": not a failure, not broken) and picked up by a later pass once it is done or its lease expired.

SQLite is touched only on the core's single-thread "catalog lane" (STYLE §4.3; `on_catalog`), which
holds its own connection to the database file. Posting is async, on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import queue
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from digests import ledger
from digests.errors import DeliveryError, DigestBotError
from digests.models import Channel, Coverage, Digest

from .posting import (  # FIX_HINTS is re-exported: bot.slack_app reads it from here
    FIX_HINTS,
    RETRY_NOTICE,
    STALE_NOTICE,
    Poster,
    broken_sentence,
    error_text,
    get_poster,
    rate_limiter,
)

log = logging.getLogger(__name__)

__all__ = ["FIX_HINTS", "Deliverer", "DeliveryResult", "arxiv_lane", "broken_sentence", "catalog_lane", "due_runs",
           "on_catalog"]

Outcome = Literal[
    "posted", "recovered", "already", "reposted", "retry", "broken", "failed", "skipped", "paused", "unknown",
    "unavailable", "busy", "leased",
]
GLOBAL_LIMIT_CODES = frozenset({"global_rate_limited", "global"})
"""DeliveryError codes meaning the whole bot (not one channel) is rate limited (Discord's global 429)."""
MAX_IN_FLIGHT = 8
MAX_INLINE_WAIT = 900.0
"""Retry-After up to this many seconds is waited out in place; longer ones are left to the retry sweep."""
MAX_ATTEMPTS = 8
BACKOFF = 5.0


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one channel's digest."""

    channel: str
    outcome: Outcome
    digest_id: str | None = None
    ref: str | None = None
    detail: str | None = None


class CatalogLane:
    """A single-thread executor with its own SQLite connection to the core's database file.

    sqlite3 connections may only be used on the thread that opened them, so the lane opens its own
    (WAL mode lets it and the other lanes share the file). An in-memory database runs inline.
    """

    def __init__(self, core: Any, name: str = "catalog-lane", *, abandon_on_close: bool = False) -> None:
        self.core = core
        self.path = _db_file(core)
        self.abandon_on_close = abandon_on_close
        pool: Executor | None = None
        if self.path:
            pool = DaemonLane(name) if abandon_on_close else ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pool = pool
        self._lane_core: Any = None

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fn(core, *args, **kwargs)` on the lane with the lane's Core; await the result."""
        if self._pool is None:
            return fn(self.core, *args, **kwargs)
        call = functools.partial(self._call, fn, args, kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._lane_core is None:
            from digests.store import open_db

            self._lane_core = dataclasses.replace(self.core, db=open_db(self.path))
        return fn(self._lane_core, *args, **kwargs)

    def close(self) -> None:
        """Stop the lane after the work in hand (or, for a lane made with `abandon_on_close`, without it)."""
        if self._pool is not None:
            self._pool.shutdown(wait=not self.abandon_on_close)
            self._pool = None


class DaemonLane(Executor):
    """A one-thread executor whose thread is a daemon: work still running at exit is abandoned.

    For the arXiv lane: a fetch can take minutes (3 s between requests, 30 s timeouts, retries), and
    Ctrl-C must not wait for it. An abandoned fetch leaves its `fetch_runs` row as recorded up front
    (failed, "interrupted"), which the next digest's coverage line reports as a stopped fetch.
    """

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Queue `fn(*args, **kwargs)` and return its future."""
        if self._closed:
            raise RuntimeError("cannot schedule new work on a closed lane")
        future: Future[Any] = Future()
        self._queue.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # handed to the awaiting caller, as ThreadPoolExecutor does
                    future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; the thread ends after the work in hand (waited for only with `wait`)."""
        self._closed = True
        self._queue.put(None)
        if wait:
            self._thread.join()


def _db_file(core: Any) -> str | None:
    try:
        rows = core.db.execute("PRAGMA database_list").fetchall()
        return next((r[2] for r in rows if r[1] == "main" and r[2]), None)
    except sqlite3.ProgrammingError:  # the connection belongs to another thread: use the configured file
        return str(core.settings.db_path)


def catalog_lane(core: Any) -> CatalogLane:
    """Return the process-wide catalog lane of `core` (created on first use)."""
    lane = core.cache.get("catalog_lane")
    if not isinstance(lane, CatalogLane):
        lane = core.cache["catalog_lane"] = CatalogLane(core)
    return lane


def arxiv_lane(core: Any) -> CatalogLane:
    """Return the process-wide arXiv lane (`core.cache["arxiv_lane"]`): arXiv asks for one connection at a time."""
    lane = core.cache.get("arxiv_lane")
    if not isinstance(lane, CatalogLane):
        lane = core.cache["arxiv_lane"] = CatalogLane(core, name="arxiv-lane", abandon_on_close=True)
    return lane


async def on_catalog(core: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run `fn(core, *args, **kwargs)` on the core's catalog lane."""
    return await catalog_lane(core).run(fn, *args, **kwargs)


def _default_build(core: Any, channel_key: str, now: datetime) -> Digest:
    from digests.build import build_digest

    return build_digest(core, channel_key, now)


def _default_build_many(core: Any, channel_keys: list[str], now: datetime) -> list[Digest]:
    from digests.build import build_digests

    return build_digests(core, channel_keys, now)


def _get_channel(core: Any, key: str) -> Channel | None:
    from digests.channels import get_channel

    return get_channel(core, key)


def _mark_broken(core: Any, key: str, reason: str) -> None:
    from digests.channels import mark_broken

    mark_broken(core, key, reason)


def _clear_broken(core: Any, key: str) -> None:
    from digests.channels import clear_broken

    clear_broken(core, key)


class Deliverer:
    """Delivers digests for one core; share one per process so pacing state is shared.

    `posters(platform)` returns the Poster for a platform (default: the registry); `build(core, key, now)`
    builds a digest (default: digests.build.build_digest) and `build_many(core, keys, now)` many at once
    (default: digests.build.build_digests, or `build` per key when only `build` is given).
    `checkpoint(name)` is called at each crash point (`intent`: intent and attempt recorded, nothing
    posted; `posted`: the platform returned a ref not yet recorded; `ref`: inside the transaction that
    records the ref and the papers) so tests can stop the process there.
    """

    def __init__(
        self,
        core: Any,
        *,
        posters: Callable[[str], Poster] | None = None,
        build: Callable[[Any, str, datetime], Digest] | None = None,
        build_many: Callable[[Any, list[str], datetime], list[Digest]] | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_inline_wait: float = MAX_INLINE_WAIT,
        max_attempts: int = MAX_ATTEMPTS,
        checkpoint: Callable[[str], None] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.core = core
        self.posters = posters or (lambda platform: get_poster(platform, core))
        self.build = build or _default_build
        if build_many is None:
            build_many = _default_build_many if build is None else self._build_each
        self.build_many = build_many
        self.max_inline_wait = max_inline_wait
        self.max_attempts = max_attempts
        self.checkpoint = checkpoint or (lambda name: None)
        self.sleep = sleep
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._active: set[str] = set()

    def _build_each(self, core: Any, keys: list[str], now: datetime) -> list[Digest]:
        return [self.build(core, key, now) for key in keys]

    async def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a catalog function on the catalog lane."""
        return await on_catalog(self.core, fn, *args, **kwargs)

    async def deliver(self, channel_key: str, due: datetime, *, include_broken: bool = False) -> DeliveryResult:
        """Build `channel_key`'s digest for the run at `due` and deliver it unless the ledger has it.

        Broken channels are skipped unless `include_broken` (an explicit `digest send`, or the channel's
        scheduled run, which is how a fixed channel is noticed); a successful send clears the broken mark.
        Build failures are logged, recorded and told to the channel.
        """
        channel = await self.db(_get_channel, channel_key)
        skip = _skip_reason(channel_key, channel, include_broken)
        if skip is not None:
            return skip
        try:
            digest = await self.db(self.build, channel_key, self.build_time(due))
        except Exception as exc:  # the per-job boundary (STYLE §4.6): log, record, tell the channel
            return await self._build_failed(channel, due, exc)
        return await self.deliver_built(channel, digest)

    def build_time(self, due: datetime) -> datetime:
        """Return the `now` a digest due at `due` is built at: now, if later.

        The digest still belongs to the slot at `due` (its id and week), but a late one (sent at start
        after the bot was down) covers what is known when it goes out, e.g. the fetch made at start,
        instead of saying no fetch had run by its slot.
        """
        return max(due, self.core.clock())

    async def deliver_built(self, channel: Channel, digest: Digest) -> DeliveryResult:
        """Record the intent for a built digest and drive it to `done`."""
        try:
            self.posters(channel.platform)
        except DigestBotError as exc:  # e.g. no SLACK_BOT_TOKEN: nothing recorded, the channel waits
            return DeliveryResult(channel.key, "unavailable", digest.id, detail=str(exc))
        delivery, to_post, fresh = await self.db(ledger.begin, digest, self.core.clock(), count_attempt=True)
        if digest.id in self._active:
            return DeliveryResult(channel.key, "busy", digest.id, detail="already being delivered")
        if delivery.status in ledger.OPEN and not ledger.holds(self.core, delivery):
            return _leased(delivery)
        self._active.add(digest.id)
        try:
            if fresh:
                result = await self._releasing(digest.id, self._post(delivery, to_post, attempt_counted=True))
            elif delivery.status in ledger.OPEN:
                result = await self._releasing(digest.id, self._complete(delivery, to_post, claimed=True))
            else:
                result = await self._complete(delivery, to_post)
        finally:
            self._active.discard(digest.id)
        if channel.broken_reason and result.outcome in ("posted", "recovered"):
            await self.db(_clear_broken, channel.key)
        return result

    async def _build_failed(self, channel: Channel, due: datetime, exc: Exception) -> DeliveryResult:
        """Log, record (so `digestbot status` and `/digest status` show it) and tell the channel."""
        from digests.select import digest_week

        log.error("building the digest for %s failed: %s", channel.key, exc, exc_info=exc)
        week = digest_week(channel.schedule, self.build_time(due))
        detail = f"build failed: {type(exc).__name__}: {exc}"
        try:
            await self.db(ledger.record_build_failed, channel.key, week, detail, self.core.clock())
        except sqlite3.Error as err:  # the catalog itself may be what failed; still tell the channel
            log.error("could not record the failed build for %s: %s", channel.key, err)
        await self._tell_failure(channel, week, exc)
        return DeliveryResult(channel.key, "failed", f"{channel.key}|{week}", detail=detail)

    async def complete(self, delivery: ledger.Delivery, digest: Digest | None = None) -> DeliveryResult:
        """Drive one ledger row to `done`: finish, recover via find_posted, or post its digest.

        `digest` must be the row's digest (as `ledger.begin` returns it); None reads it from the ledger.
        A digest this deliverer is already working on (e.g. waiting out a 429) is left alone ("busy"):
        the retry sweep must not post it a second time while its first post is in flight.
        """
        if delivery.digest_id in self._active:
            return DeliveryResult(delivery.channel, "busy", delivery.digest_id, detail="already being delivered")
        self._active.add(delivery.digest_id)
        try:
            return await self._complete(delivery, digest)
        finally:
            self._active.discard(delivery.digest_id)

    async def _complete(
        self, delivery: ledger.Delivery, digest: Digest | None, *, claimed: bool = False
    ) -> DeliveryResult:
        key, digest_id = delivery.channel, delivery.digest_id
        if delivery.status == "done":
            return DeliveryResult(key, "already", digest_id, delivery.message_ref)
        if delivery.status in ("failed", "skipped"):
            return DeliveryResult(key, "skipped", digest_id, detail=delivery.error)
        if not claimed:  # an open row: only the process holding its lease may post or recover it
            if not await self.db(ledger.claim, digest_id, self.core.clock()):
                return await self._held_elsewhere(delivery)
            return await self._releasing(digest_id, self._complete(delivery, digest, claimed=True))
        if delivery.status == "posted":
            await self.db(ledger.record_sent, digest_id, self.core.clock())
            return DeliveryResult(key, "recovered", digest_id, delivery.message_ref)
        now = self.core.clock()
        if ledger.is_stale(delivery, now):
            reason = "more than a week late" + (f" (last error: {delivery.error})" if delivery.error else "")
            log.warning("skipping digest %s: %s", digest_id, reason)
            await self.db(ledger.record_skipped, digest_id, reason)
            if delivery.error:
                await self._notify(key, delivery.week, STALE_NOTICE.format(week=delivery.week, error=error_text(
                    delivery.error)), f"Digest {delivery.week}: dropped.")
            return DeliveryResult(key, "skipped", digest_id, detail=reason)
        if delivery.retry_at and datetime.fromisoformat(delivery.retry_at) > now:
            return DeliveryResult(key, "retry", digest_id, detail=f"waiting until {delivery.retry_at}")
        if digest is None:
            digest = await self.db(ledger.stored_digest, digest_id)
        return await self._post(delivery, digest)

    async def _releasing(self, digest_id: str, work: Awaitable[DeliveryResult]) -> DeliveryResult:
        """Await `work` (done under this process's lease on `digest_id`), then release the lease, also
        after an error. A cancelled or crashed delivery keeps it: it expires after ledger.LEASE."""
        try:
            result = await work
        except Exception:
            await self._release(digest_id)
            raise
        await self._release(digest_id)
        return result

    async def _held_elsewhere(self, delivery: ledger.Delivery) -> DeliveryResult:
        """Return "leased" for `delivery`, naming the process that holds it now (re-read from the ledger)."""
        return _leased(await self.db(ledger.get_delivery, delivery.digest_id) or delivery)

    async def _release(self, digest_id: str) -> None:
        try:
            await self.db(ledger.release, digest_id)
        except (sqlite3.Error, RuntimeError) as exc:  # e.g. the lane closed at shutdown: the lease expires
            log.warning("could not release the lease on %s: %s", digest_id, exc)

    async def _renew(self, digest_id: str, wait: float = 0.0) -> bool:
        """Extend this process's lease to cover `wait` seconds plus one attempt; False if it was lost."""
        return bool(await self.db(ledger.claim, digest_id, self.core.clock(), ledger.LEASE + timedelta(seconds=wait)))

    async def repost(self, digest_id: str) -> DeliveryResult:
        """Post a delivered digest again, as stored (an explicit `digest send --force`); the ledger keeps the first."""
        digest = await self.db(ledger.stored_digest, digest_id)
        if digest is None:
            return DeliveryResult(digest_id.split("|", 1)[0], "unknown", digest_id, detail="not in the ledger")
        poster = self.posters(digest.channel.split(":", 1)[0])
        await rate_limiter(self.core, poster.platform).acquire(digest.channel)
        try:
            ref = await poster.post(digest.channel, digest)
        except DeliveryError as exc:
            return DeliveryResult(digest.channel, "broken" if exc.permanent else "retry", digest_id, detail=str(exc))
        return DeliveryResult(digest.channel, "reposted", digest_id, ref)

    async def _post(
        self, delivery: ledger.Delivery, digest: Digest | None, *, attempt_counted: bool = False
    ) -> DeliveryResult:
        key, digest_id = delivery.channel, delivery.digest_id
        if digest is None:
            return DeliveryResult(key, "failed", digest_id, detail="no stored digest")
        try:
            poster = self.posters(key.split(":", 1)[0])
        except DigestBotError as exc:
            return DeliveryResult(key, "unavailable", digest_id, detail=str(exc))
        limiter = rate_limiter(self.core, poster.platform)
        attempts = delivery.attempts
        if attempts and not attempt_counted:
            found = await self._find_posted(poster, key, digest, attempts)
            if found is not None:
                return found
        while True:
            if not attempt_counted:
                if not await self._renew(digest_id):  # another process took over (our lease ran out)
                    return await self._held_elsewhere(delivery)
                await self.db(ledger.record_attempt, digest_id)
                attempts += 1
            attempt_counted = False
            self.checkpoint("intent")
            try:
                async with self._in_flight:
                    await limiter.acquire(key)
                    ref = await poster.post(key, digest)
            except DeliveryError as exc:
                wait = await self._handle_error(key, digest_id, exc, attempts, limiter)
                if wait is None:
                    if not exc.permanent and not exc.retry_after:
                        await self._tell_retrying(delivery, digest, attempts, exc.message)
                    detail = broken_sentence(key, exc) if exc.permanent else str(exc)
                    return DeliveryResult(key, "broken" if exc.permanent else "retry", digest_id, detail=detail)
                if not await self._renew(digest_id, wait):  # keep others off while waiting in place
                    return await self._held_elsewhere(delivery)
                await self.sleep(wait)
                if exc.retry_after is None:  # the post may have reached the platform: check before re-posting
                    found = await self._find_posted(poster, key, digest, attempts)
                    if found is not None:
                        return found
                continue
            except Exception as exc:  # a poster bug or network error: keep the intent, retry later
                log.exception("posting %s failed", digest_id)
                retry_at = self.core.clock() + timedelta(seconds=BACKOFF * attempts)
                await self.db(ledger.record_retry, digest_id, f"{type(exc).__name__}: {exc}", retry_at)
                await self._tell_retrying(delivery, digest, attempts, f"{type(exc).__name__}: {exc}")
                return DeliveryResult(key, "retry", digest_id, detail=str(exc))
            self.checkpoint("posted")
            return await self._finish(key, digest, ref, "posted")

    async def _find_posted(self, poster: Poster, key: str, digest: Digest, attempts: int) -> DeliveryResult | None:
        """Ask the platform whether an earlier attempt reached it: a result if it did (or if asking
        failed, which is recorded like a failed post), None if it is safe to post."""
        try:
            ref = await poster.find_posted(key, digest.id)
        except DeliveryError as exc:  # never post blind, and never let one channel sink a catch-up
            if exc.permanent:
                await self._handle_error(key, digest.id, exc, attempts, None)
                return DeliveryResult(key, "broken", digest.id, detail=broken_sentence(key, exc))
            retry_at = self.core.clock() + timedelta(seconds=exc.retry_after or BACKOFF * max(attempts, 1))
            await self.db(ledger.record_retry, digest.id, str(exc), retry_at)
            return DeliveryResult(key, "retry", digest.id, detail=str(exc))
        return await self._finish(key, digest, ref, "recovered") if ref else None

    def _record_posted(self, core: Any, digest: Digest, ref: str, now: datetime) -> None:
        ledger.record_posted(core, digest, ref, now, between=lambda: self.checkpoint("ref"))

    async def _finish(self, key: str, digest: Digest, ref: str, outcome: Outcome) -> DeliveryResult:
        await self.db(self._record_posted, digest, ref, self.core.clock())
        return DeliveryResult(key, outcome, digest.id, ref)

    async def _handle_error(
        self, key: str, digest_id: str, exc: DeliveryError, attempts: int, limiter: Any
    ) -> float | None:
        """Record a platform error; return seconds to wait before retrying in place, or None to stop."""
        if exc.permanent:
            reason = broken_sentence(key, exc)
            log.warning("channel %s is broken (code %s): %s", key, exc.code, reason)
            await self.db(ledger.record_failed, digest_id, reason)
            await self.db(_mark_broken, key, reason)
            return None
        wait = float(exc.retry_after) if getattr(exc, "retry_after", None) else BACKOFF * attempts
        limiter.pause(wait, None if getattr(exc, "code", None) in GLOBAL_LIMIT_CODES else key)
        if wait <= self.max_inline_wait and attempts < self.max_attempts:
            return wait
        retry_at = self.core.clock() + timedelta(seconds=wait)
        log.warning("digest %s not delivered yet (%s); retrying at %s", digest_id, exc, retry_at.isoformat())
        await self.db(ledger.record_retry, digest_id, str(exc), retry_at)
        return None

    async def _tell_failure(self, channel: Channel, week: str, exc: BaseException) -> None:
        text = (
            "This week's digest could not be built, sorry. The admins can see why with `digestbot status`; "
            "it will be tried again at the next scheduled run."
        )
        await self._notify(channel.key, week, text, f"Digest build failed: {type(exc).__name__}",
                           themes=channel.themes)

    async def _tell_retrying(self, delivery: ledger.Delivery, digest: Digest, attempts: int, error: str) -> None:
        """Tell the channel once, when the in-place retries of its digest have run out (STYLE §4.6 (c)).

        Rate limits are not told (the notice would be refused too); the sweep retries them until the
        digest is a week late, and the channel is told then if it was dropped.
        """
        if attempts != self.max_attempts:
            return
        start = datetime.fromisoformat(delivery.created_at) if delivery.created_at else self.core.clock()
        last = start + ledger.MAX_LATE
        until = f"{last:%a} {last:%b} {last.day}"
        text = RETRY_NOTICE.format(error=error_text(error), until=until)
        await self._notify(digest.channel, digest.week, text, f"Digest {digest.week}: not delivered yet.",
                           themes=digest.themes)

    async def _notify(self, key: str, week: str, text: str, coverage: str, themes: tuple[str, ...] = ()) -> None:
        """Post a short notice (not a digest) to the channel; log if even that fails."""
        notice = Digest(
            id=f"{key}|{week}|failed", channel=key, week=week, title="Weekly digest: not available", themes=themes,
            items=(), coverage=Coverage("failed", coverage), generated_at=self.core.clock().isoformat(),
            empty_note=text, status="source_error",
        )
        try:
            poster = self.posters(key.split(":", 1)[0])
            await rate_limiter(self.core, poster.platform).acquire(key)
            await poster.post(key, notice)
        except (DigestBotError, OSError) as err:
            log.warning("could not tell %s that its digest failed: %s", key, err)

    async def deliver_many(
        self, runs: Iterable[tuple[str, datetime]], *, workers: int = 32, chunk: int = 1000
    ) -> list[DeliveryResult]:
        """Deliver many (channel key, due) runs: digests are built in chunks on the catalog lane while
        `workers` deliver them; requests in flight stay bounded and memory holds about two chunks."""
        queue: asyncio.Queue[tuple[Channel, Digest] | None] = asyncio.Queue(maxsize=chunk)
        results: list[DeliveryResult] = []
        # Builds only read, so they get their own lane and connection: ledger writes never queue behind them.
        build_lane = CatalogLane(self.core, name="build-lane")

        async def produce() -> None:
            for due, keys in _group_by_due(runs).items():
                for start in range(0, len(keys), chunk):
                    for item in await build_lane.run(self._build_chunk, keys[start:start + chunk], due):
                        if isinstance(item, DeliveryResult):
                            results.append(item)
                        elif isinstance(item[1], Exception):
                            results.append(await self._build_failed(item[0], due, item[1]))
                        else:
                            await queue.put(item)
            for _ in range(workers):
                await queue.put(None)

        async def consume() -> None:
            while (item := await queue.get()) is not None:
                results.append(await self.deliver_built(*item))

        try:
            await asyncio.gather(produce(), *(consume() for _ in range(workers)))
        finally:
            build_lane.close()
        return results

    def _build_chunk(self, core: Any, keys: list[str], due: datetime) -> list[Any]:
        """Build digests for `keys` (on the lane); yields results for skipped channels, errors per channel."""
        out: list[Any] = []
        ready: list[Channel] = []
        at = self.build_time(due)
        for key in keys:
            channel = _get_channel(core, key)
            skip = _skip_reason(key, channel, True)  # scheduled runs try broken channels once (see deliver)
            if skip is not None:
                out.append(skip)
            else:
                ready.append(channel)  # type: ignore[arg-type]
        try:
            digests = self.build_many(core, [c.key for c in ready], at)
            return out + list(zip(ready, digests))
        except Exception:  # one bad channel must not sink the chunk: build one by one
            for channel in ready:
                try:
                    out.append((channel, self.build(core, channel.key, at)))
                except Exception as exc:
                    out.append((channel, exc))
            return out

    async def recover(self) -> list[DeliveryResult]:
        """Finish every open intent whose retry time has come (crash recovery and the retry sweep)."""
        rows = await self.db(ledger.open_deliveries, self.core.clock())
        return list(await asyncio.gather(*(self.complete(row) for row in rows)))

    async def catch_up(self) -> list[DeliveryResult]:
        """Recover open intents, then deliver each channel's latest missed run once (start-up)."""
        results = await self.recover()
        runs = await self.db(due_runs, self.core.clock())
        return results + await self.deliver_many(runs)

    async def deliver_due(self, channel_key: str) -> DeliveryResult:
        """Deliver the channel's latest scheduled run (the digest job); a no-op if the ledger has it."""
        from digests.schedule import previous_digest_run

        channel = await self.db(_get_channel, channel_key)
        if channel is None:
            return DeliveryResult(channel_key, "unknown")
        return await self.deliver(channel_key, previous_digest_run(channel, self.core.clock()), include_broken=True)


def _leased(delivery: ledger.Delivery) -> DeliveryResult:
    """The result for an open row another live process is delivering: left for a later pass, not a failure."""
    holder = f"{delivery.claimed_by} until {delivery.claimed_until}" if delivery.claimed_by else "another process"
    log.info("digest %s is being delivered by %s; skipped here for now", delivery.digest_id, holder)
    return DeliveryResult(delivery.channel, "leased", delivery.digest_id,
                          detail=f"being delivered by {holder}")


def _skip_reason(key: str, channel: Channel | None, include_broken: bool) -> DeliveryResult | None:
    if channel is None:
        return DeliveryResult(key, "unknown", detail="no subscription")
    if channel.paused:
        return DeliveryResult(key, "paused")
    if channel.broken_reason and not include_broken:
        return DeliveryResult(key, "broken", detail=channel.broken_reason)
    return None


def _group_by_due(runs: Iterable[tuple[str, datetime]]) -> dict[datetime, list[str]]:
    groups: dict[datetime, list[str]] = {}
    for key, due in runs:
        groups.setdefault(due, []).append(key)
    return groups


def due_runs(core: Any, now: datetime) -> list[tuple[str, datetime]]:
    """Return (channel key, run) for channels whose latest scheduled run has no ledger row yet.

    Older runs missed while the bot was down are more than a week late: they are logged and skipped.
    """
    from digests.channels import list_channels
    from digests.schedule import due_run, missed_runs

    runs = []
    for channel in list_channels(core):
        run = due_run(channel, now)
        if run is None:
            continue
        last = ledger.last_delivery(core, channel.key)
        built = last is not None and not ledger.is_build_failure(last)  # a failed build is tried again at start
        if built and last.created_at and datetime.fromisoformat(last.created_at) >= run:  # type: ignore[union-attr]
            continue
        since = last.created_at if last else channel.created_at
        skipped = missed_runs(channel, datetime.fromisoformat(since), now) if since else 0
        if skipped:
            log.warning("%s: skipping %d digest(s) more than a week late; sending the latest one", channel.key, skipped)
        runs.append((channel.key, run))
    return runs
