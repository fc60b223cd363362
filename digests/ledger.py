"""The delivery ledger: exactly-once digests over the m001 tables deliveries / sent_papers / classics_shown.

One `deliveries` row per (channel, week), keyed by the digest id `<channel>|<week>`, moves through:

    pending  intent recorded (with the digest as JSON) before the first post attempt
    posted   the platform's message ref is recorded
    done     the digest's papers are in sent_papers and its classic in classics_shown
    failed   a permanent platform error (the channel is marked broken; its next scheduled run tries again),
             or a digest that could not be built (no payload, no attempts; tried again at start)
    skipped  a pending digest that became more than a week late

Crash recovery, by where the process died (the deliverer in bot/deliver.py drives this):
- before the intent: no row, so the digest is built and delivered as if nothing happened;
- after the intent, before or during the post: a `pending` row; the poster's `find_posted` is asked
  first (Slack message metadata / Discord nonce), and the stored digest is posted only if not found;
- after the post, before the ref: same `pending` row; `find_posted` finds the message and its ref
  is recorded without posting again (the same check runs before an in-place retry after an error
  that may have reached the platform, e.g. a lost reply; never after a 429, which posted nothing);
- after the ref, before sent_papers: ref and papers are written in one transaction (`record_posted`),
  so this rolls back to the case above. A `posted` row (ref without papers, e.g. from `record_ref`)
  is still finished from the stored digest without posting.

The intent and the first attempt are one transaction (`begin(count_attempt=True)`); each retry
counts its attempt before posting, so `attempts > 0` means "a post may have reached the platform".

Crash recovery alone cannot tell a dead process's open row from a live one's: `digestbot digest send`
run while `digestbot run` is posting the same digest would see a pending row, ask `find_posted`
(nothing yet) and post a second copy. So an open row carries a lease (`claimed_by`, `claimed_until`,
migration m006): only the process holding an unexpired lease posts or recovers it. `begin` takes the
lease in the intent's own transaction, `claim` takes or extends it (one conditional UPDATE, so two
processes can never both win), and `release` gives it back when the delivery ends. A crashed
process's lease expires after `LEASE`, and the row is then recovered exactly as before.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import socket
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin, get_type_hints

from .models import Digest
from .store import utcnow_iso

if TYPE_CHECKING:
    from .service import Core

log = logging.getLogger(__name__)

DeliveryStatus = Literal["pending", "posted", "done", "failed", "skipped"]
OPEN = ("pending", "posted")
MAX_LATE = timedelta(days=7)
"""An open intent older than this is skipped, never posted (schedule.MAX_LATE says the same for jobs)."""
LEASE = timedelta(minutes=10)
"""How long a claim on an open row keeps other processes off it. It must outlast one post attempt: a Slack
digest is a main message plus thread replies, each paced at one a second per channel and retried up to 3
times after a 429, so a long thread can take minutes. It is also how long a crashed process's digest
waits before another process recovers it. The deliverer extends it before each attempt and each wait."""


@dataclass(frozen=True)
class Delivery:
    """One row of the ledger."""

    digest_id: str
    channel: str
    week: str
    status: DeliveryStatus
    message_ref: str | None = None
    attempts: int = 0
    error: str | None = None
    retry_at: str | None = None
    created_at: str | None = None
    posted_at: str | None = None
    claimed_by: str | None = None
    """The process delivering this row now (`host:pid:token`, see `claimer`), while `claimed_until` is ahead."""
    claimed_until: str | None = None


def digest_to_json(digest: Digest) -> str:
    """Return the digest as JSON, so a retry after a crash posts exactly the same message."""
    return json.dumps(dataclasses.asdict(digest), ensure_ascii=False, separators=(",", ":"))


def digest_from_json(text: str) -> Digest:
    """Return the Digest stored by `digest_to_json`."""
    return _decode(Digest, json.loads(text))


def _decode(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _decode(inner[0], value)
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value))
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return tp(**{f.name: _decode(hints[f.name], value[f.name]) for f in dataclasses.fields(tp) if f.name in value})
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(tp: type) -> dict[str, Any]:
    if tp not in _HINTS:
        _HINTS[tp] = get_type_hints(tp)
    return _HINTS[tp]


def _row(row: dict[str, Any]) -> Delivery:
    return Delivery(**{f.name: row[f.name] for f in dataclasses.fields(Delivery)})


def get_delivery(core: Core, digest_id: str) -> Delivery | None:
    """Return the ledger row of `digest_id`, or None."""
    rows = list(core.db.query("SELECT * FROM deliveries WHERE digest_id = ?", [digest_id]))
    return _row(rows[0]) if rows else None


def stored_digest(core: Core, digest_id: str) -> Digest | None:
    """Return the digest recorded with the intent, or None."""
    rows = list(core.db.query("SELECT payload_json FROM deliveries WHERE digest_id = ?", [digest_id]))
    return digest_from_json(rows[0]["payload_json"]) if rows and rows[0]["payload_json"] else None


def begin(
    core: Core, digest: Digest, now: datetime, *, count_attempt: bool = False
) -> tuple[Delivery, Digest, bool]:
    """Record the intent to post `digest` (before any post); return its row, the digest to post, and
    whether the row is fresh (new or reopened by this call).

    A new row stores `digest` (and, with `count_attempt`, counts the post about to be tried, in the
    same transaction). An existing row is returned unchanged with the digest stored in it, so a
    retry posts exactly what the first attempt did; a `failed` one is reopened with this digest
    (the channel was fixed since).

    In the same transaction this process claims the row (see `claim`): a new or reopened row always,
    an open one unless another live process holds its lease. `holds(core, row)` on the returned row
    says whether this process may post or recover it.
    """
    payload = digest_to_json(digest)
    attempts = 1 if count_attempt else 0
    me, until = claimer(core), utcnow_iso(now + LEASE)
    with core.db.atomic():
        fresh = core.db.execute(
            "INSERT OR IGNORE INTO deliveries (digest_id, channel, week, status, payload_json, created_at, attempts,"
            " claimed_by, claimed_until) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
            [digest.id, digest.channel, digest.week, payload, utcnow_iso(now), attempts, me, until],
        ).rowcount
        fresh += core.db.execute(
            "UPDATE deliveries SET status = 'pending', payload_json = ?, retry_at = NULL, attempts = attempts + ?,"
            " claimed_by = ?, claimed_until = ? WHERE digest_id = ? AND status = 'failed'",
            [payload, attempts, me, until, digest.id],
        ).rowcount
        if not fresh:
            _claim(core, digest.id, me, now, LEASE)
    delivery = get_delivery(core, digest.id)
    assert delivery is not None
    if fresh:
        return delivery, digest, True
    return delivery, stored_digest(core, digest.id) or digest, False


def record_intent(core: Core, digest: Digest, now: datetime) -> Delivery:
    """Record the intent to post `digest` and return its row (see `begin`)."""
    return begin(core, digest, now)[0]


def claimer(core: Core) -> str:
    """Return this process's claim identity, `host:pid:token` (one per Core and the lanes sharing its cache;
    the token tells apart two Cores in one process and a restarted process that got the same pid)."""
    who = core.cache.get("ledger_claimer")
    if not isinstance(who, str):  # setdefault: two lane threads asking first still agree
        who = core.cache.setdefault("ledger_claimer", f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")
    return str(who)


def _claim(core: Core, digest_id: str, me: str, now: datetime, lease: timedelta) -> bool:
    return core.db.execute(
        "UPDATE deliveries SET claimed_by = ?, claimed_until = ? WHERE digest_id = ? AND status IN ('pending', 'posted')"
        " AND (claimed_until IS NULL OR claimed_until < ? OR claimed_by IS NULL OR claimed_by = ?)",
        [me, utcnow_iso(now + lease), digest_id, utcnow_iso(now), me],
    ).rowcount == 1


def claim(core: Core, digest_id: str, now: datetime, lease: timedelta = LEASE) -> bool:
    """Claim the open row `digest_id` for this process until `now + lease`, or extend this process's claim;
    return False when another process holds an unexpired lease (or the row is not open): then this
    process must neither post nor recover it. One conditional UPDATE, so of two racing processes one wins."""
    with core.db.atomic():
        return _claim(core, digest_id, claimer(core), now, lease)


def release(core: Core, digest_id: str) -> None:
    """Give up this process's claim on `digest_id` (a no-op when another process holds it now)."""
    with core.db.atomic():
        core.db.execute(
            "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL WHERE digest_id = ? AND claimed_by = ?",
            [digest_id, claimer(core)],
        )


def holds(core: Core, delivery: Delivery) -> bool:
    """Return True when `delivery` (as just read) is claimed by this process."""
    return delivery.claimed_by is not None and delivery.claimed_by == claimer(core)


def record_attempt(core: Core, digest_id: str) -> None:
    """Count one post attempt (before it is made: an attempt may reach the platform and still fail)."""
    with core.db.atomic():
        core.db.execute("UPDATE deliveries SET attempts = attempts + 1 WHERE digest_id = ?", [digest_id])


def _set_ref(core: Core, digest_id: str, message_ref: str, now: datetime) -> None:
    core.db.execute(
        "UPDATE deliveries SET status = 'posted', message_ref = ?, posted_at = ?, error = NULL, retry_at = NULL"
        " WHERE digest_id = ? AND status = 'pending'",
        [message_ref, utcnow_iso(now), digest_id],
    )


def _set_sent(core: Core, digest: Digest, now: datetime) -> None:
    at = utcnow_iso(now)
    papers = [(i.paper.arxiv_id, i.paper.version) for i in digest.items]
    papers += [(u.paper.arxiv_id, u.version) for u in digest.updated]
    core.db.conn.executemany(
        "INSERT INTO sent_papers (channel, arxiv_id, version, digest_id, sent_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (channel, arxiv_id) DO UPDATE SET version = excluded.version,"
        " digest_id = excluded.digest_id, sent_at = excluded.sent_at",
        [(digest.channel, arxiv_id, version, digest.id, at) for arxiv_id, version in papers if arxiv_id],
    )
    if digest.classic is not None and digest.classic.paper.id is not None:
        core.db.execute(
            # A full rotation brings classics back: the latest showing must win, or the least recently
            # shown classic would stay the same one every week.
            "INSERT INTO classics_shown (channel, paper_id, digest_id, shown_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (channel, paper_id) DO UPDATE SET digest_id = excluded.digest_id, shown_at = excluded.shown_at",
            [digest.channel, digest.classic.paper.id, digest.id, at],
        )
    core.db.execute("UPDATE deliveries SET status = 'done' WHERE digest_id = ? AND status = 'posted'", [digest.id])


def record_ref(core: Core, digest_id: str, message_ref: str, now: datetime) -> None:
    """Record the platform's message ref alone (status `posted`); `record_posted` does ref + papers at once."""
    with core.db.atomic():
        _set_ref(core, digest_id, message_ref, now)


def record_sent(core: Core, digest_id: str, now: datetime, digest: Digest | None = None) -> None:
    """Record a `posted` digest's papers in sent_papers and its classic in classics_shown; mark it done."""
    digest = digest or stored_digest(core, digest_id)
    if digest is not None:
        with core.db.atomic():
            _set_sent(core, digest, now)


def record_posted(
    core: Core, digest: Digest, message_ref: str, now: datetime, between: Callable[[], None] | None = None
) -> None:
    """Record the message ref, the papers and the classic in ONE transaction, so a crash leaves either
    an open intent (recovered through `find_posted`) or a finished delivery, never half of one.

    `between` runs after the ref is written and before the papers (tests crash there).
    """
    with core.db.atomic():
        _set_ref(core, digest.id, message_ref, now)
        if between is not None:
            between()
        _set_sent(core, digest, now)


def record_retry(core: Core, digest_id: str, error: str, retry_at: datetime) -> None:
    """Keep the intent open and note when to try again (rate limit, network error)."""
    with core.db.atomic():
        core.db.execute(
            "UPDATE deliveries SET error = ?, retry_at = ? WHERE digest_id = ? AND status = 'pending'",
            [error, utcnow_iso(retry_at), digest_id],
        )


def record_failed(core: Core, digest_id: str, error: str) -> None:
    """Close the intent after a permanent platform error (nothing was posted)."""
    with core.db.atomic():
        core.db.execute(
            "UPDATE deliveries SET status = 'failed', error = ?, retry_at = NULL WHERE digest_id = ? AND status = 'pending'",
            [error, digest_id],
        )


def record_build_failed(core: Core, channel: str, week: str, error: str, now: datetime) -> None:
    """Record that the week's digest could not be built (a `failed` row without digest or attempts),
    unless the ledger already has that week; a later successful build reopens it like any failed row."""
    with core.db.atomic():
        core.db.execute(
            "INSERT INTO deliveries (digest_id, channel, week, status, error, created_at, attempts)"
            " VALUES (?, ?, ?, 'failed', ?, ?, 0)"
            " ON CONFLICT (digest_id) DO UPDATE SET error = excluded.error"
            " WHERE deliveries.status = 'failed' AND deliveries.attempts = 0",
            [f"{channel}|{week}", channel, week, error, utcnow_iso(now)],
        )


def is_build_failure(delivery: Delivery) -> bool:
    """Return True for a row `record_build_failed` wrote (nothing was ever posted for it)."""
    return delivery.status == "failed" and not delivery.attempts and delivery.message_ref is None


def record_skipped(core: Core, digest_id: str, reason: str) -> None:
    """Close an open intent that will not be delivered (too late)."""
    with core.db.atomic():
        core.db.execute(
            "UPDATE deliveries SET status = 'skipped', error = ? WHERE digest_id = ? AND status = 'pending'",
            [reason, digest_id],
        )


def open_deliveries(core: Core, now: datetime | None = None) -> list[Delivery]:
    """Return intents not yet done (pending or posted); with `now`, only those whose retry time has come."""
    rows = core.db.query("SELECT * FROM deliveries WHERE status IN ('pending', 'posted') ORDER BY created_at, id")
    due = [_row(r) for r in rows]
    if now is not None:
        due = [d for d in due if not d.retry_at or datetime.fromisoformat(d.retry_at) <= now]
    return due


def last_delivery(core: Core, channel_key: str, status: tuple[str, ...] | None = None) -> Delivery | None:
    """Return the channel's latest ledger row (optionally only with one of `status`)."""
    sql = "SELECT * FROM deliveries WHERE channel = ?"
    params: list[Any] = [channel_key]
    if status:
        sql += f" AND status IN ({', '.join('?' for _ in status)})"
        params += list(status)
    rows = list(core.db.query(sql + " ORDER BY created_at DESC, id DESC LIMIT 1", params))
    return _row(rows[0]) if rows else None


def is_stale(delivery: Delivery, now: datetime, max_late: timedelta = MAX_LATE) -> bool:
    """Return True when an open intent is more than `max_late` old and should be skipped, not posted."""
    return delivery.created_at is not None and now - datetime.fromisoformat(delivery.created_at) > max_late


def _fetch_summary(core: Core) -> dict[str, Any] | None:
    from .fetch import last_runs

    runs = last_runs(core, 1)
    if not runs:
        return None
    run = runs[0]
    return {
        "outcome": run.outcome, "started": run.started, "finished": run.finished, "window_start": run.window_start,
        "window_end": run.window_end, "papers": run.papers, "reason": run.reason,
    }


def _active_lease(delivery: Delivery | None, now: datetime) -> dict[str, str] | None:
    """Return {"by", "until"} when a live process holds `delivery`'s lease at `now`, else None."""
    if delivery is None or delivery.status not in ("pending", "posted") or not delivery.claimed_by:
        return None
    if not delivery.claimed_until or delivery.claimed_until <= utcnow_iso(now):
        return None
    return {"by": delivery.claimed_by, "until": delivery.claimed_until}


def channel_status(core: Core, key: str, now: datetime) -> dict[str, Any]:
    """Return what `/digest status` shows for a channel: next run, last digest, broken reason, last fetch."""
    from .channels import get_channel
    from .schedule import next_digest_run

    channel = get_channel(core, key)
    last = last_delivery(core, key)
    delivered = last_delivery(core, key, ("posted", "done"))
    next_run = None
    if channel is not None and not channel.paused:
        next_run = next_digest_run(channel, now).isoformat()
    return {
        "channel": key,
        "subscribed": channel is not None,
        "themes": list(channel.themes) if channel else [],
        "paused": channel.paused if channel else None,
        "schedule": dataclasses.asdict(channel.schedule) if channel else None,
        "next_run": next_run,
        "last_digest": (
            {"week": delivered.week, "posted_at": delivered.posted_at, "message_ref": delivered.message_ref}
            if delivered else None
        ),
        "last_attempt": dataclasses.asdict(last) if last and last != delivered else None,
        "delivering": _active_lease(last, now),
        "broken_reason": channel.broken_reason if channel else None,
        "broken_at": channel.broken_at if channel else None,
        "last_fetch": _fetch_summary(core),
    }
