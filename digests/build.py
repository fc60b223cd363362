"""Build one channel's weekly digest from the catalog, without recording anything.

Recording what was sent (sent_papers, classics_shown) is the delivery ledger's job once a post
succeeds: every DigestItem/UpdatedItem carries the paper (arxiv_id, version) and the Classic its
seed paper (id), which is all the ledger needs.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, TypeVar

from . import catalog, select
from .channels import require_channel
from .errors import ChannelError
from .models import Channel, Classic, Digest, FetchRun, Paper, Theme, paper_to_dict
from .store import utcnow_iso

if TYPE_CHECKING:
    from .service import Core

T = TypeVar("T")


def build_digest(core: "Core", channel_key: str, now: datetime) -> Digest:
    """Return the digest `channel_key` gets for the slot due at `now`; raise ChannelError if unknown or paused."""
    return _Builder(core, now).build(require_channel(core, channel_key))


def build_digests(core: "Core", channel_keys: Iterable[str], now: datetime) -> list[Digest]:
    """Return the digests of many channels, sharing catalog lookups between channels with the same themes."""
    builder = _Builder(core, now)
    return [builder.build(require_channel(core, key)) for key in channel_keys]


def digest_id(channel_key: str, week: str) -> str:
    """Return the stable digest id `<channel>|<week>` used for exactly-once delivery."""
    return f"{channel_key}|{week}"


class _Builder:
    """Builds digests at one `now`, memoising lookups that do not depend on the channel."""

    def __init__(self, core: "Core", now: datetime) -> None:
        self.core = core
        self.now = now.astimezone(timezone.utc)
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
        week = select.digest_week(channel.schedule, self.now)
        window = select.digest_window(channel, self.now, previous_digest_time(self.core, channel.key, week))
        since, until = window.since.isoformat(), window.until.isoformat()
        candidates = self._cached(("matched", channel.themes, since, until),
                                  lambda: catalog.matched_papers(self.core, list(channel.themes), since, until))
        sent = sent_versions(self.core, channel.key)
        ranked = select.rank_new(candidates, channel.themes, sent)
        items = tuple(ranked[: channel.size_new])
        revisions = self._cached(("revisions", since), lambda: catalog.revisions_since(self.core, since))
        updated = tuple(select.select_updated(revisions, sent, channel.size_new))
        labels = [self._theme(name).label for name in channel.themes]
        coverage = select.summarize_coverage(self._runs(window), window, self.now, labels, len(ranked))
        title = f"{select.join_words(labels, '&')} papers: week of {window.scheduled:%b} {window.scheduled.day}"
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
            classic=self._classic(channel, [item.paper for item in ranked]),
            empty_note=select.empty_note(coverage, items, labels),
            status=select.digest_status(coverage, items),
        )

    def _theme(self, name: str) -> Theme:
        for theme in self.core.themes:
            if theme.name == name:
                return theme
        return Theme(name=name, label=name, description="")

    def _runs(self, window: select.Window) -> list[FetchRun]:
        from .fetch import runs_between

        start = window.since.isoformat()
        return self._cached(("runs", start), lambda: runs_between(self.core, start, self.now))

    def _classic(self, channel: Channel, week_papers: list[Paper]) -> Classic | None:
        if channel.size_classic < 1:
            return None
        themes = [self._theme(name) for name in channel.themes]
        seeds = self._cached(("seeds",), lambda: catalog.seed_papers(self.core))
        rotation = self._cached(("rotation", channel.themes), lambda: select.order_classics(seeds, themes))
        paper = select.pick_classic(rotation, classics_shown(self.core, channel.key))
        if paper is None:
            return None
        return Classic(paper=paper, since_then=tuple(select.nearest_papers(paper, week_papers)))


def previous_digest_time(core: "Core", channel_key: str, week: str) -> datetime | None:
    """Return when the channel's last digest before this one was posted (from the delivery ledger), or None."""
    row = core.db.execute(
        "SELECT max(posted_at) FROM deliveries WHERE channel = ? AND digest_id != ? AND posted_at IS NOT NULL",
        [channel_key, digest_id(channel_key, week)],
    ).fetchone()
    return datetime.fromisoformat(row[0]) if row and row[0] else None


def sent_versions(core: "Core", channel_key: str) -> dict[str, int | None]:
    """Return {versionless arXiv id: version sent} for every paper this channel was sent."""
    rows = core.db.execute("SELECT arxiv_id, version FROM sent_papers WHERE channel = ?", [channel_key])
    return {arxiv_id: version for arxiv_id, version in rows}


def classics_shown(core: "Core", channel_key: str) -> dict[int, str]:
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
