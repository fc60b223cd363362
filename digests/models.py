"""Frozen domain records shared by every layer: papers, themes, channels, digests, fetch runs.

Dates are ISO 8601 strings (UTC) so records round-trip through SQLite and JSON unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Origin = Literal["seed", "arxiv", "import"]
FetchOutcome = Literal["ok", "empty", "failed"]
DigestStatus = Literal["ok", "quiet", "source_error"]

ARXIV_ABS_URL = "https://arxiv.org/abs/{}"
EXCERPT_CHARS = 90


@dataclass(frozen=True)
class SourceRef:
    """Where a paper was listed: a seed file and the 1-based line its entry starts on."""

    file: str
    line: int
    kind: str = "seed"
    """research_page | arxiv_listing | paper_index | blog_index | import | arxiv"""
    title: str | None = None
    text: str | None = None
    """The abstract, teaser or excerpt exactly as this source gave it."""


@dataclass(frozen=True)
class Paper:
    """One work, merged over all the places it was listed."""

    title: str | None
    """None where no source gave a title; see `display_title`."""
    abstract: str = ""
    authors: tuple[str, ...] = ()
    affiliations: tuple[str, ...] = ()
    arxiv_id: str | None = None
    """Versionless canonical id (`2401.01234`, `hep-th/9711200`), or None until known."""
    version: int | None = None
    categories: tuple[str, ...] = ()
    primary_category: str | None = None
    published: str | None = None
    updated: str | None = None
    doi: str | None = None
    journal_ref: str | None = None
    comment: str | None = None
    origin: Origin = "seed"
    sources: tuple[SourceRef, ...] = ()
    themes: tuple[str, ...] = ()
    announced: str | None = None
    """Day (ISO date) the paper was announced on arXiv or first fetched."""
    id: int | None = None

    @property
    def url(self) -> str | None:
        """Return the arXiv abstract page URL, or None while the arXiv id is unknown."""
        return ARXIV_ABS_URL.format(self.arxiv_id) if self.arxiv_id else None

    @property
    def display_title(self) -> str:
        """Return the title, or a clearly marked excerpt where no source gave one."""
        if self.title:
            return self.title
        text = " ".join((self.abstract or "").split())
        if len(text) > EXCERPT_CHARS:
            text = text[:EXCERPT_CHARS].rsplit(" ", 1)[0]
        return f"[untitled] \u201c{text}\u2026\u201d"


@dataclass(frozen=True)
class Theme:
    """A topic channels subscribe to, drawn from the seed catalog."""

    name: str
    """Short slug users type: `rlhf`, `oversight`, ..."""
    label: str
    description: str
    keywords: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    exemplars: tuple[str, ...] = ()
    """Titles (or title prefixes) of seed papers that typify the theme."""
    threshold: float | None = None
    """Score above which a paper matches; None means the matcher's default."""
    negative_keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Schedule:
    """When a channel gets its digest: weekday (0 = Monday), local HH:MM and an IANA zone."""

    weekday: int = 0
    time: str = "09:00"
    tz: str = "UTC"


@dataclass(frozen=True)
class Channel:
    """A chat channel keyed `slack:<team>:<channel>`, `discord:<guild>:<channel>` or `console:<name>`."""

    key: str
    themes: tuple[str, ...] = ()
    schedule: Schedule = field(default_factory=Schedule)
    size_new: int = 5
    size_classic: int = 1
    broken_reason: str | None = None
    broken_at: str | None = None
    created_at: str | None = None
    source: str = "chat"
    """`config` when declared in the config file, `chat`/`cli` when set by a command."""

    @property
    def paused(self) -> bool:
        """Return True when the channel has no themes left."""
        return not self.themes

    @property
    def platform(self) -> str:
        """Return the platform part of the key (`slack`, `discord`, `console`)."""
        return self.key.split(":", 1)[0]


@dataclass(frozen=True)
class ThemeScore:
    """How one paper scored against one theme, with the reasons."""

    theme: str
    score: float
    matched: bool
    why: tuple[str, ...] = ()
    """Titles of the one to three nearest seed papers."""
    terms: tuple[str, ...] = ()
    """Theme terms found in the paper."""


@dataclass(frozen=True)
class FetchRun:
    """What one arXiv fetch scanned, so a quiet week and a broken fetch never look alike."""

    id: int | None
    started: str
    finished: str | None
    window_start: str
    window_end: str
    outcome: FetchOutcome
    reason: str | None = None
    queries: tuple[str, ...] = ()
    requests: int = 0
    pages: int = 0
    retries: int = 0
    papers: int = 0
    scanned: dict[str, int] = field(default_factory=dict)
    """Papers seen per arXiv category."""


@dataclass(frozen=True)
class DigestItem:
    """A new paper in a digest, with the channel themes it matched and why."""

    paper: Paper
    themes: tuple[str, ...]
    score: float
    why: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpdatedItem:
    """A paper the channel already saw that has a new version ("v2 posted")."""

    paper: Paper
    version: int


@dataclass(frozen=True)
class Classic:
    """The week's classic seed paper, with the week's new papers nearest to it."""

    paper: Paper
    since_then: tuple[Paper, ...] = ()


@dataclass(frozen=True)
class Coverage:
    """The one line every digest ends with: what was scanned, or what broke."""

    status: Literal["ok", "empty", "failed", "stale", "none"]
    text: str
    window_start: str | None = None
    window_end: str | None = None
    scanned: int = 0


@dataclass(frozen=True)
class Digest:
    """One channel's digest for one week: the neutral message every renderer takes."""

    id: str
    """Stable id `<channel>|<week>`, used for exactly-once delivery."""
    channel: str
    week: str
    """ISO week of the digest, e.g. `2026-W48`."""
    title: str
    themes: tuple[str, ...]
    items: tuple[DigestItem, ...]
    coverage: Coverage
    generated_at: str
    updated: tuple[UpdatedItem, ...] = ()
    classic: Classic | None = None
    empty_note: str | None = None
    status: DigestStatus = "ok"


def paper_to_dict(paper: Paper) -> dict[str, object]:
    """Return the JSON object `papers --json` prints for one paper."""
    return {
        "id": paper.id,
        "title": paper.title,
        "display_title": paper.display_title,
        "abstract": paper.abstract,
        "authors": list(paper.authors),
        "affiliations": list(paper.affiliations),
        "arxiv_id": paper.arxiv_id,
        "version": paper.version,
        "url": paper.url,
        "themes": list(paper.themes),
        "origin": paper.origin,
        "categories": list(paper.categories),
        "primary_category": paper.primary_category,
        "published": paper.published,
        "updated": paper.updated,
        "announced": paper.announced,
        "doi": paper.doi,
        "journal_ref": paper.journal_ref,
        "sources": [{"file": s.file, "line": s.line} for s in paper.sources],
    }
