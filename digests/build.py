"""Build one channel's weekly digest from the catalog, without recording anything.

Recording what was sent (sent_papers, classics_shown) is the delivery ledger's job once a post
succeeds: every DigestItem/UpdatedItem carries the paper (arxiv_id, version) and the Classic its
seed paper (id), which is all the ledger needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from . import catalog, select
from .channels import list_channels, require_channel
from .errors import ChannelError
from .models import Channel, Classic, Digest, DigestItem, FetchRun, Theme, paper_to_dict
from .store import utcnow_iso

if TYPE_CHECKING:
    from .service import Core

T = TypeVar("T")


BULK_FROM = 50
"""From this many channels on, `build_digests` reads channel rows and history in a few whole-table queries."""


def build_digest(core: Core, channel_key: str, now: datetime) -> Digest:
    """Return the digest `channel_key` gets for the slot due at `now`; raise ChannelError if unknown or paused."""
    return _Builder(core, now, _History(core)).build(require_channel(core, channel_key))


def build_digests(core: Core, channel_keys: Iterable[str], now: datetime) -> list[Digest]:
    """Return the digests of many channels, sharing catalog lookups between channels with the same themes."""
    keys = list(channel_keys)
    history = _BulkHistory(core) if len(keys) >= BULK_FROM else _History(core)
    builder = _Builder(core, now, history)
    return [builder.build(history.channel(key)) for key in keys]


def digest_id(channel_key: str, week: str) -> str:
    """Return the stable digest id `<channel>|<week>` used for exactly-once delivery."""
    return f"{channel_key}|{week}"


class _Builder:
    """Builds digests at one `now`, memoising lookups that do not depend on the channel."""

    def __init__(self, core: Core, now: datetime, history: _History) -> None:
        self.core = core
        self.history = history
        self.now = now.astimezone(UTC)
        self.memo: dict[tuple[Any, ...], Any] = {}

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]  # type: ignore[no-any-return]

    def build(self, channel: Channel) -> Digest:
        if channel.paused:
            raise ChannelError(
                f"{channel.key} is paused (no themes); subscribe it to a theme to get digests again",
                channel=channel.key,
            )
        slot = select.scheduled_for(channel.schedule, self.now)
        week = select.iso_week(slot.date())
        previous = self.history.previous(channel.key, digest_id(channel.key, week))
        window = select.digest_window(channel, self.now, previous, slot)
        since, until = window.since.isoformat(), window.until.isoformat()
        week_items, week_ids = self._cached(("ranked", channel.themes, since, until),
                                            lambda: self._week_items(channel.themes, since, until))
        sent = self.history.sent(channel.key)
        chosen, found = select.take_unsent(week_items, week_ids, sent, channel.size_new)
        items = tuple(chosen)
        revisions = self._cached(("revisions", since), lambda: catalog.revisions_since(self.core, since))
        updated = tuple(select.select_updated(revisions, sent, channel.size_new))
        labels = [self._theme(name).label for name in channel.themes]
        coverage = self._cached(("coverage", since, until, tuple(labels), found, len(items)),
                                lambda: select.summarize_coverage(self._runs(window), window, self.now, labels, found,
                                                                  len(items)))
        title = f"Week of {window.scheduled:%b} {window.scheduled.day}: {select.join_labels(labels)}"
        return Digest(
            id=digest_id(channel.key, week),
            channel=channel.key,
            week=week,
            title=title,
            themes=channel.themes,
            items=items,
            coverage=coverage,
            generated_at=utcnow_iso(self.now),
            updated=updated,
            classic=self._classic(channel, ("since", channel.themes, since, until), week_items),
            empty_note=select.empty_note(coverage, items, labels),
            status=select.digest_status(coverage, items),
        )

    def _week_items(self, themes: tuple[str, ...], since: str, until: str) -> tuple[list[DigestItem], frozenset[str]]:
        items = select.rank_candidates(catalog.matched_papers(self.core, list(themes), since, until), themes)
        return items, frozenset(item.paper.arxiv_id for item in items if item.paper.arxiv_id)

    def _theme(self, name: str) -> Theme:
        for theme in self.core.themes:
            if theme.name == name:
                return theme
        return Theme(name=name, label=name, description="")

    def _runs(self, window: select.Window) -> list[FetchRun]:
        from .fetch import runs_between

        start = window.since.isoformat()
        return self._cached(("runs", start), lambda: runs_between(self.core, start, self.now))

    def _classic(self, channel: Channel, key: tuple[Any, ...], week_items: list[DigestItem]) -> Classic | None:
        if channel.size_classic < 1:
            return None
        themes = [self._theme(name) for name in channel.themes]
        seeds = self._cached(("seeds",), lambda: catalog.seed_papers(self.core))
        rotation = self._cached(("rotation", channel.themes), lambda: select.order_classics(seeds, themes))
        paper = select.pick_classic(rotation, self.history.shown(channel.key))
        if paper is None:
            return None
        index = self._cached(key, lambda: select.TermIndex([item.paper for item in week_items]))
        since_then = self._cached((*key, paper.id), lambda: tuple(index.nearest(paper)))
        return Classic(paper=paper, since_then=since_then)


class _History:
    """What the ledger recorded for a channel, read one channel at a time."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def channel(self, key: str) -> Channel:
        return require_channel(self.core, key)

    def previous(self, key: str, this_digest: str) -> datetime | None:
        return previous_digest_time(self.core, key, this_digest)

    def sent(self, key: str) -> dict[str, int | None]:
        return sent_versions(self.core, key)

    def shown(self, key: str) -> dict[int, str]:
        return classics_shown(self.core, key)


class _BulkHistory(_History):
    """The same answers from whole-table reads, for building thousands of digests at once."""

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.channels = {c.key: c for c in list_channels(core)}
        self.posted: dict[str, list[tuple[str, str]]] = {}
        for channel, posted_at, digest in core.db.execute(
            "SELECT channel, posted_at, digest_id FROM deliveries WHERE posted_at IS NOT NULL ORDER BY posted_at DESC"
        ):
            self.posted.setdefault(channel, []).append((posted_at, digest))
        self.sent_rows: dict[str, dict[str, int | None]] = {}
        for channel, arxiv_id, version in core.db.execute("SELECT channel, arxiv_id, version FROM sent_papers"):
            self.sent_rows.setdefault(channel, {})[arxiv_id] = version
        self.shown_rows: dict[str, dict[int, str]] = {}
        for channel, paper_id, shown_at in core.db.execute("SELECT channel, paper_id, shown_at FROM classics_shown"):
            self.shown_rows.setdefault(channel, {})[paper_id] = shown_at

    def channel(self, key: str) -> Channel:
        return self.channels[key] if key in self.channels else require_channel(self.core, key)

    def previous(self, key: str, this_digest: str) -> datetime | None:
        found = next((at for at, digest in self.posted.get(key, ()) if digest != this_digest), None)
        return datetime.fromisoformat(found) if found else None

    def sent(self, key: str) -> dict[str, int | None]:
        return self.sent_rows.get(key, {})

    def shown(self, key: str) -> dict[int, str]:
        return self.shown_rows.get(key, {})


def previous_digest_time(core: Core, channel_key: str, this_digest: str) -> datetime | None:
    """Return when the channel's latest digest other than `this_digest` was posted (delivery ledger), or None."""
    row = core.db.execute(
        "SELECT max(posted_at) FROM deliveries WHERE channel = ? AND digest_id != ? AND posted_at IS NOT NULL",
        [channel_key, this_digest],
    ).fetchone()
    return datetime.fromisoformat(row[0]) if row and row[0] else None


def sent_versions(core: Core, channel_key: str) -> dict[str, int | None]:
    """Return {versionless arXiv id: version sent} for every paper this channel was sent."""
    rows = core.db.execute("SELECT arxiv_id, version FROM sent_papers WHERE channel = ?", [channel_key])
    return {arxiv_id: version for arxiv_id, version in rows}


def classics_shown(core: Core, channel_key: str) -> dict[int, str]:
    """Return {seed paper id: when last shown} for this channel's classics."""
    rows = core.db.execute("SELECT paper_id, shown_at FROM classics_shown WHERE channel = ?", [channel_key])
    return {paper_id: shown_at for paper_id, shown_at in rows}


def digest_to_dict(digest: Digest) -> dict[str, Any]:
    """Return the digest as a JSON-ready dict (papers as `paper_to_dict` prints them)."""
    data = asdict(digest)
    data["items"] = [{**asdict(item), "paper": paper_to_dict(item.paper)} for item in digest.items]
    data["updated"] = [{"paper": paper_to_dict(u.paper), "version": u.version} for u in digest.updated]
    if digest.classic is not None:
        data["classic"] = {
            "paper": paper_to_dict(digest.classic.paper),
            "since_then": [paper_to_dict(p) for p in digest.classic.since_then],
        }
    return data
