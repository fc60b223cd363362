"""Pure selection: which papers, updates, classic and coverage line one channel's digest gets.

Nothing here reads the database or the clock: `build.py` gathers the rows and passes `now`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .models import (
    Channel,
    Coverage,
    DigestItem,
    DigestStatus,
    FetchRun,
    Paper,
    Schedule,
    Theme,
    ThemeScore,
    UpdatedItem,
)

STALE_AFTER = timedelta(days=4, hours=12)
"""A fetch older than this is stale. arXiv announces Sunday-Thursday at 20:00 US Eastern, so the longest
healthy gap is Thursday evening to Sunday evening (72 h), or 96 h around a holiday such as Thanksgiving."""
SINCE_THEN_MAX = 3
SINCE_THEN_MIN_SIMILARITY = 0.05
_WORD = re.compile(r"[a-z][a-z0-9-]{2,}")
_STOPWORD_TEXT = (
    "the and for with that this from are our its their these those which into over than then when where while "
    "also can may such using use used based via show shows we paper approach method methods results new"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class Window:
    """The digest's slot and the announcement days it covers: [since, until)."""

    scheduled: datetime
    """The scheduled send time this digest belongs to, in the channel's zone."""
    week: str
    since: date
    until: date


def scheduled_for(schedule: Schedule, now: datetime) -> datetime:
    """Return the latest scheduled slot at or before `now`, tz-aware in the schedule's zone."""
    zone = ZoneInfo(schedule.tz)
    local = now.astimezone(zone)
    hours, minutes = (int(part) for part in schedule.time.split(":"))
    day = local.date() - timedelta(days=(local.weekday() - schedule.weekday) % 7)
    slot = _wall_time(day, time(hours, minutes), zone)
    if slot > local:
        slot = _wall_time(day - timedelta(days=7), time(hours, minutes), zone)
    return slot


def _wall_time(day: date, at: time, zone: ZoneInfo) -> datetime:
    # Same rule as schedule.py: a wall time skipped by spring-forward moves on by the gap; a repeated one is the first.
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC).astimezone(zone)


def iso_week(day: date) -> str:
    """Return the ISO week label of `day`, e.g. `2026-W48`."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def digest_week(schedule: Schedule, now: datetime) -> str:
    """Return the ISO week of the digest due at `now`: the week of its scheduled date in the channel's zone."""
    return iso_week(scheduled_for(schedule, now).date())


def week_start(moment: datetime, tz: str) -> date:
    """Return the Monday of the week containing `moment` in zone `tz`."""
    local = moment.astimezone(ZoneInfo(tz)).date()
    return local - timedelta(days=local.weekday())


def digest_window(channel: Channel, now: datetime, previous: datetime | None, slot: datetime | None = None) -> Window:
    """Return the digest's slot and window of announcement days.

    New papers are those announced since the previous digest (`previous`, its posting time) or, for a first
    digest, in the seven days before its slot; never before the week the subscription started in.
    """
    slot = slot or scheduled_for(channel.schedule, now)
    since = previous.astimezone(UTC).date() if previous else slot.date() - timedelta(days=7)
    if channel.created_at:
        since = max(since, week_start(datetime.fromisoformat(channel.created_at), channel.schedule.tz))
    until = now.astimezone(UTC).date() + timedelta(days=1)
    return Window(scheduled=slot, week=iso_week(slot.date()), since=since, until=max(until, since))


def rank_new(
    candidates: Iterable[tuple[Paper, Sequence[ThemeScore]]],
    themes: Sequence[str],
    sent: Mapping[str, int | None],
) -> list[DigestItem]:
    """Return the unsent candidates matching `themes` as items, best first, each paper once with all its themes."""
    return drop_sent(rank_candidates(candidates, themes), sent)


def rank_candidates(candidates: Iterable[tuple[Paper, Sequence[ThemeScore]]], themes: Sequence[str]) -> list[DigestItem]:
    """Return candidates matching `themes` as items: best score first, then newest, then by arXiv id."""
    merged: dict[str, tuple[Paper, list[ThemeScore]]] = {}
    for paper, scores in candidates:
        hits = [s for s in scores if s.matched and s.theme in themes]
        if paper.arxiv_id and hits:
            merged.setdefault(paper.arxiv_id, (paper, []))[1].extend(hits)
    items = sorted((_item(paper, hits, themes) for paper, hits in merged.values()), key=lambda i: i.paper.arxiv_id or "")
    items.sort(key=lambda i: i.paper.announced or "", reverse=True)
    items.sort(key=lambda i: i.score, reverse=True)
    return items


def drop_sent(items: Sequence[DigestItem], sent: Mapping[str, int | None]) -> list[DigestItem]:
    """Return the items whose paper this channel was never sent (by versionless arXiv id)."""
    if not sent:
        return list(items)
    return [item for item in items if item.paper.arxiv_id not in sent]


def take_unsent(
    items: Sequence[DigestItem], ids: frozenset[str], sent: Mapping[str, int | None], limit: int
) -> tuple[list[DigestItem], int]:
    """Return the best `limit` unsent items and how many unsent there are; `ids` are the items' arXiv ids."""
    chosen: list[DigestItem] = []
    for item in items:
        if len(chosen) == limit:
            break
        if item.paper.arxiv_id not in sent:
            chosen.append(item)
    return chosen, len(items) - sum(1 for arxiv_id in sent if arxiv_id in ids)


def _item(paper: Paper, hits: list[ThemeScore], themes: Sequence[str]) -> DigestItem:
    # The why (nearest seed papers) is the best-scoring theme's, so that theme is listed first:
    # a reader sees which theme the "Why" line explains.
    best = max(hits, key=lambda s: s.score)
    order = {name: -max(s.score for s in hits if s.theme == name) for name in themes if any(s.theme == name for s in hits)}
    names = tuple(sorted(order, key=lambda name: (order[name], themes.index(name))))
    terms = tuple(dict.fromkeys(term for s in sorted(hits, key=lambda s: -s.score) for term in s.terms))
    return DigestItem(paper=paper, themes=names, score=best.score, why=best.why[:3], terms=terms[:6])


def select_updated(
    revisions: Iterable[tuple[Paper, int]], sent: Mapping[str, int | None], limit: int
) -> list[UpdatedItem]:
    """Return "updated" lines for papers this channel was sent whose newer version has appeared since."""
    updates = [
        UpdatedItem(paper=paper, version=version)
        for paper, version in revisions
        if paper.arxiv_id in sent and version > (sent.get(paper.arxiv_id or "") or 1)
    ]
    return sorted(updates, key=lambda u: u.paper.arxiv_id or "")[:limit]


def order_classics(seeds: Iterable[Paper], themes: Sequence[Theme]) -> list[Paper]:
    """Return the rotation of seed papers for these themes: round-robin over themes, exemplars first."""
    seeds = list(seeds)
    queues = [_theme_seeds(seeds, theme) for theme in themes]
    order: list[Paper] = []
    seen: set[int | None] = set()
    for rank in range(max((len(q) for q in queues), default=0)):
        for queue in queues:
            if rank < len(queue) and queue[rank].id not in seen:
                seen.add(queue[rank].id)
                order.append(queue[rank])
    return order


def _theme_seeds(seeds: list[Paper], theme: Theme) -> list[Paper]:
    """Return the theme's seed papers: exemplars first in the theme's order (even if untagged), then tagged ones."""
    exemplars = [_fold(e) for e in theme.exemplars if e.strip()]

    def exemplar_rank(paper: Paper) -> int:
        title, opening = _fold(paper.title or ""), _fold((paper.abstract or "")[:400])
        hits = [n for n, e in enumerate(exemplars) if (title and title.startswith(e)) or opening.startswith(e)]
        return min(hits, default=len(exemplars))

    ranked = sorted(((exemplar_rank(p), p.id or 0, p) for p in seeds), key=lambda r: r[:2])
    return [p for rank, _, p in ranked if rank < len(exemplars) or theme.name in p.themes]


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


def pick_classic(rotation: Sequence[Paper], shown: Mapping[int, str]) -> Paper | None:
    """Return the first paper of the rotation not shown yet; once all were shown, the least recently shown."""
    for paper in rotation:
        if paper.id not in shown:
            return paper
    if not rotation:
        return None
    return min(enumerate(rotation), key=lambda pair: (shown[pair[1].id or 0], pair[0]))[1]


def nearest_papers(target: Paper, candidates: Sequence[Paper], k: int = SINCE_THEN_MAX) -> list[Paper]:
    """Return up to `k` candidates most similar to `target` (TF-IDF cosine over title + abstract)."""
    return TermIndex(candidates).nearest(target, k)


class TermIndex:
    """TF-IDF vectors of a set of papers, for "since then" pointers; built once, queried per classic."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers = list(papers)
        docs = [_terms(p) for p in self.papers]
        self.df = Counter(term for doc in docs for term in doc)
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for index, doc in enumerate(docs):
            for term, weight in _normalise(self._weights(doc)).items():
                self.postings.setdefault(term, []).append((index, weight))

    def _weights(self, doc: Counter[str]) -> dict[str, float]:
        n = len(self.papers)
        return {t: (1 + math.log(c)) * math.log((1 + n) / (1 + self.df[t])) for t, c in doc.items()}

    def nearest(self, target: Paper, k: int = SINCE_THEN_MAX) -> list[Paper]:
        """Return up to `k` indexed papers most similar to `target`, best first, never `target` itself."""
        totals: dict[int, float] = {}
        for term, weight in _normalise(self._weights(_terms(target))).items():
            for index, other in self.postings.get(term, ()):
                totals[index] = totals.get(index, 0.0) + weight * other
        ranked = sorted((-score, index) for index, score in totals.items() if score >= SINCE_THEN_MIN_SIMILARITY)
        found = [self.papers[index] for _, index in ranked if target.id is None or self.papers[index].id != target.id]
        return found[:k]


def _terms(paper: Paper) -> Counter[str]:
    text = f"{paper.title or ''} {paper.title or ''} {paper.abstract or ''}".lower()
    return Counter(w for w in _WORD.findall(text) if w not in _STOPWORDS)


def _normalise(vector: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in vector.values()))
    return {t: w / norm for t, w in vector.items()} if norm else {}


def summarize_coverage(
    runs: Sequence[FetchRun], window: Window, now: datetime, labels: Sequence[str], found: int, shown: int | None = None
) -> Coverage:
    """Return the coverage line: what was scanned, or that the fetch failed, went stale or never ran.

    `found` is how many new papers matched, `shown` how many the digest lists (default: all of them).
    """
    last_day = window.until - timedelta(days=1)
    if not runs:
        return Coverage("none", f"No arXiv fetch has run since {_day(window.since)}, so this digest has no new "
                        "papers from arXiv.", window.since.isoformat(), last_day.isoformat())
    good = [r for r in runs if r.outcome in ("ok", "empty")]
    latest = max(runs, key=lambda r: r.started)
    covered_to = min(last_day, max((_last_covered_day(r) for r in good), default=window.since))
    span = _span(window.since, covered_to)
    if latest.outcome == "failed":
        return _failed_coverage(runs, good, window, now, covered_to)
    finished = datetime.fromisoformat(latest.finished or latest.started)
    if now - finished > STALE_AFTER:
        text = f"The last arXiv fetch was {_when(finished, now, 'on')}; this digest covers {span} only."
        return Coverage("stale", text, window.since.isoformat(), covered_to.isoformat(), _scanned_total(good))
    scanned, categories = _scanned(good)
    source = f"{scanned:,} {categories + ' ' if categories else ''}papers from arXiv, {span}"
    if found == 0:
        text = f"No new papers in {join_labels(labels)} this week; scanned {source}."
        return Coverage("empty", text, window.since.isoformat(), covered_to.isoformat(), scanned)
    matched = f"{found} new {'paper' if found == 1 else 'papers'}"
    if shown is not None and shown < found:
        matched = f"The best {shown} of {matched}"
    return Coverage("ok", f"{matched} in {join_labels(labels)}; scanned {source}.",
                    window.since.isoformat(), covered_to.isoformat(), scanned)


def _failed_coverage(
    runs: Sequence[FetchRun], good: Sequence[FetchRun], window: Window, now: datetime, covered_to: date
) -> Coverage:
    last_good = max((r.started for r in good), default="")
    failures = [r for r in runs if r.outcome == "failed" and r.started > last_good]
    since = _when(datetime.fromisoformat(min(r.started for r in failures)), now)
    problem = f"arXiv could not be reached {since}"
    if all(_was_interrupted(r) for r in failures):  # we stopped it; arXiv may be fine
        last = max(failures, key=lambda r: r.started)
        problem = f"The last arXiv fetch was stopped {_when(_started(last), now, 'on')} before it finished"
    if not good:
        text = f"{problem}, so this digest has no new papers from arXiv."
    else:
        text = f"{problem}; this digest covers {_span(window.since, covered_to)} only."
    return Coverage("failed", text, window.since.isoformat(), covered_to.isoformat(), _scanned_total(good))


INTERRUPTED = ("interrupted", "KeyboardInterrupt", "CancelledError", "SystemExit")
"""How fetch.fetch_window records a run the process stopped (killed, Ctrl-C) rather than one arXiv refused."""


def _was_interrupted(run: FetchRun) -> bool:
    return (run.reason or "").startswith(INTERRUPTED)


def _started(run: FetchRun) -> datetime:
    return datetime.fromisoformat(run.started)


def digest_status(coverage: Coverage, items: Sequence[DigestItem]) -> DigestStatus:
    """Return `source_error` when the fetch failed, went stale or never ran; `quiet` with no new papers."""
    if coverage.status in ("failed", "stale", "none"):
        return "source_error"
    return "ok" if items else "quiet"


def empty_note(coverage: Coverage, items: Sequence[DigestItem], labels: Sequence[str]) -> str | None:
    """Return the "no new papers" sentence, or None when there are items or the coverage line says it already."""
    if items or coverage.status in ("empty", "failed", "none"):
        return None
    return f"No new papers in {join_labels(labels)} in the days covered."


def _counted_runs(good: Sequence[FetchRun]) -> list[FetchRun]:
    """Return runs with non-overlapping windows, newest first, so re-scanned days are counted once."""
    kept: list[FetchRun] = []
    for run in sorted(good, key=lambda r: r.started, reverse=True):
        if all(run.window_end <= k.window_start or run.window_start >= k.window_end for k in kept):
            kept.append(run)
    return kept


def _scanned(good: Sequence[FetchRun]) -> tuple[int, str]:
    per_category: Counter[str] = Counter()
    total = 0
    for run in _counted_runs(good):
        per_category.update(run.scanned)
        total += sum(run.scanned.values()) if run.scanned else run.papers
    names = [name for name, _ in per_category.most_common(4)]
    return total, "/".join(sorted(names)) + ("/..." if len(per_category) > 4 else "")


def _scanned_total(good: Sequence[FetchRun]) -> int:
    return _scanned(good)[0]


def join_labels(labels: Sequence[str]) -> str:
    """Return theme labels as one phrase; commas, since labels themselves contain "and"."""
    return ", ".join(labels)


def _last_covered_day(run: FetchRun) -> date:
    """Return the last UTC day a good run covered: its window end is exclusive, and no run sees past its start."""
    end = _moment(run.window_end) - timedelta(microseconds=1)
    return min(end.astimezone(UTC).date(), _moment(run.started).astimezone(UTC).date())


def _moment(text: str) -> datetime:
    value = datetime.fromisoformat(text if "T" in text else text + "T00:00:00+00:00")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _day(day: date) -> str:
    return f"{day:%b} {day.day}"


def _span(start: date, end: date) -> str:
    """Return `Nov 16-22`, `Nov 30-Dec 6` or `Nov 16`."""
    if end <= start:
        return _day(start)
    if start.month == end.month:
        return f"{_day(start)}-{end.day}"
    return f"{_day(start)}-{_day(end)}"


def _when(moment: datetime, now: datetime, preposition: str = "since") -> str:
    """Return `today`, `since Tuesday` within the last six days, else `since Nov 10`."""
    day = moment.astimezone(UTC).date()
    if day == now.astimezone(UTC).date():
        return "today"
    if 0 < (now.astimezone(UTC).date() - day).days < 6:
        return f"{preposition} {day:%A}"
    return f"{preposition} {_day(day)}"
