"""Parse the seed documents in `seeds/` into one merged, deduplicated list of seed papers.

Four formats are recognised from their content (never from the file name):

research_page  title line, abstract line, "Read on Arxiv" line, repeated; headings and intro text around them
arxiv_listing  one abstract snippet a line, cut at ~200 characters and ended with "...", no titles
paper_index    a "CLMar 15, 2023" line (category glued to date), a "TitleFirst Author, ... et al. · affils"
               line (title glued to the authors), then the abstract line
blog_index     blank-line separated blocks: a title block followed by a teaser block; page chrome and stray
               fragments ("Introduction", "Our") are blocks that are not followed by a teaser

`parse_seed_file` returns one `SeedEntry` per listing; `merge_entries` clusters entries that are the same work
(equal titles, one abstract a prefix of another, or a blog post whose rare terms a paper shares) and builds one
`Paper` per cluster that keeps every source. seeds/README.md explains the rules and the decisions behind them.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import CatalogError
from .models import Paper, SourceRef

RESEARCH_PAGE = "research_page"
ARXIV_LISTING = "arxiv_listing"
PAPER_INDEX = "paper_index"
BLOG_INDEX = "blog_index"

TITLE_PREFERENCE = (PAPER_INDEX, RESEARCH_PAGE, BLOG_INDEX, ARXIV_LISTING)
"""Which source's title a merged paper takes (the arXiv listing has none)."""

ABSTRACT_PREFERENCE = (PAPER_INDEX, RESEARCH_PAGE, ARXIV_LISTING, BLOG_INDEX)
"""Abstract sources by rank: a blog teaser is only used when no source gives an abstract."""

MIN_PREFIX_WORDS = 12
"""A text of 12+ words that starts another text is a shortened copy of it."""

RARE_MAX_CLUSTERS = 3
"""A term is rare when at most 3 clusters use it: the post, its paper and one more."""
BLOG_MATCH_MIN_SCORE = 15.0
BLOG_MATCH_MIN_RATIO = 2.0
"""A blog post joins a paper only if their shared rare terms weigh >= 15 IDF units (about five terms found
nowhere else) and at least twice what the runner-up shares."""

KEY_WORDS = 20
"""Texts that open with the same 20 words are copies of one abstract; seed_key hashes these words."""

_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|\u2026)\s*$")
_READ_ON_ARXIV = re.compile(r"^read (?:it )?on arxiv\.?$", re.IGNORECASE)
_COUNT_HEADING = re.compile(r"^\d[\d,]*\s+(?:papers?|results?|entries)\b.*$", re.IGNORECASE)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DATE_LINE = re.compile(
    r"^(?P<cat>[a-z-]+\.[A-Za-z-]+|[A-Z]{2})\s*"
    r"(?P<mon>(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?)\s+"
    r"(?P<day>\d{1,2}),\s*(?P<year>\d{4})$"
)
_CS_CLASSES = frozenset(
    """AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS NA NE NI OH OS PF
    PL RO SC SD SE SI SY""".split()  # noqa: SIM905
)
_SENTENCE_END = (".", "!", "?", '"', "\u201d", ")", "\u2026")
_NAME_WORD = re.compile(r"^(?:[^\W\d_][\w'\u2019.-]*|[a-z]{1,3})$")


class SeedFormatError(CatalogError):
    """A seed file could not be read or is in no known format (context: file, reason)."""


@dataclass(frozen=True)
class SeedEntry:
    """One listing of a work in one seed file, before merging."""

    file: str
    line: int
    """1-based line where the entry starts (its title line, or its date line in the paper index)."""
    kind: str
    title: str | None
    text: str | None
    """The abstract, snippet or teaser exactly as the file gives it."""
    truncated: bool = False
    """True when the file marks the text as cut ("..." at the end)."""
    authors: tuple[str, ...] = ()
    affiliations: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    published: str | None = None

    @property
    def clean_text(self) -> str:
        """Return the text without its trailing truncation marker."""
        return _ELLIPSIS.sub("", self.text or "").strip()

    def source_ref(self) -> SourceRef:
        """Return this entry as the SourceRef a merged paper keeps."""
        return SourceRef(file=self.file, line=self.line, kind=self.kind, title=self.title, text=self.text)


# ---------------------------------------------------------------------------------------------------------
# Reading files and detecting their format


def seed_files(seeds_dir: Path) -> list[Path]:
    """Return the seed documents in `seeds_dir` in load order: every visible `*.txt` file, sorted by name."""
    return sorted(p for p in Path(seeds_dir).glob("*.txt") if p.is_file() and not p.name.startswith("."))


def parse_seeds(seeds_dir: Path) -> list[Paper]:
    """Return the merged, deduplicated seed papers from every seed file in `seeds_dir`.

    Raises SeedFormatError naming the file when one cannot be read or is in no known format.
    """
    entries: list[SeedEntry] = []
    for path in seed_files(seeds_dir):
        entries.extend(parse_seed_file(path))
    return merge_entries(entries)


def parse_seed_file(path: Path) -> list[SeedEntry]:
    """Return one SeedEntry per listed work in the seed file at `path`, in file order; chrome is dropped.

    The format is detected from the content; an unreadable or unrecognised file raises SeedFormatError.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise SeedFormatError(f"Can't read seed file {path.name}: {exc.strerror}", file=path.name) from exc
    except UnicodeDecodeError as exc:
        raise SeedFormatError(
            f"Seed file {path.name} is not UTF-8 text (byte {exc.start}); save it as UTF-8.", file=path.name
        ) from exc
    lines = [unicodedata.normalize("NFC", line).strip() for line in text.splitlines()]
    kind = detect_format(lines)
    if kind is None:
        raise SeedFormatError(
            f"Seed file {path.name} is in no known format (research page, arXiv listing, paper index or "
            "blog index); see seeds/README.md.",
            file=path.name,
        )
    entries = _PARSERS[kind](path.name, lines)
    if not entries:
        raise SeedFormatError(f"Seed file {path.name} looks like a {kind} but lists no papers.", file=path.name)
    return entries


def detect_format(lines: Sequence[str]) -> str | None:
    """Return the seed format of a file's (stripped) lines, or None when none fits."""
    nonblank = [line for line in lines if line]
    if not nonblank or any("\x00" in line for line in nonblank):
        return None
    if sum(bool(_DATE_LINE.match(line)) for line in nonblank) >= 1 and _parse_paper_index("", list(lines)):
        return PAPER_INDEX
    if any(_READ_ON_ARXIV.match(line) for line in nonblank):
        return RESEARCH_PAGE
    snippets = [line for line in nonblank if _is_snippet(line)]
    if len(snippets) >= 2 and 2 * len(snippets) >= len(nonblank):
        return ARXIV_LISTING
    if "" in lines and _blog_pairs(_blocks(lines)):
        return BLOG_INDEX
    return None


# ---------------------------------------------------------------------------------------------------------
# The four parsers


def _parse_research_page(file: str, lines: list[str]) -> list[SeedEntry]:
    """Entries end at a "Read on Arxiv" line; the abstract and title are the two non-blank lines above it."""
    entries: list[SeedEntry] = []
    used = -1
    for i, line in enumerate(lines):
        if not _READ_ON_ARXIV.match(line):
            continue
        above = [j for j in range(i - 1, used, -1) if lines[j] and not _READ_ON_ARXIV.match(lines[j])][:2]
        if not above:
            continue
        if len(above) == 2 and _looks_like_title(lines[above[1]]) and _looks_like_prose(lines[above[0]]):
            title_at, text = above[1], lines[above[0]]
        else:
            title_at, text = above[0], None
        entries.append(SeedEntry(file, title_at + 1, RESEARCH_PAGE, lines[title_at], text))
        used = i
    return entries


def _parse_arxiv_listing(file: str, lines: list[str]) -> list[SeedEntry]:
    """Every abstract-like line is one untitled entry; headings such as "14 papers on arXiv" are chrome."""
    return [
        SeedEntry(file, i + 1, ARXIV_LISTING, None, line, truncated=bool(_ELLIPSIS.search(line)))
        for i, line in enumerate(lines)
        if line and not _COUNT_HEADING.match(line) and (_is_snippet(line) or _looks_like_prose(line))
    ]


def _parse_paper_index(file: str, lines: list[str]) -> list[SeedEntry]:
    """A date line, the glued title+authors line and the abstract line make one entry."""
    entries: list[SeedEntry] = []
    i = 0
    while i < len(lines):
        date = _DATE_LINE.match(lines[i])
        rest = [j for j in range(i + 1, min(i + 4, len(lines))) if lines[j]][:2]
        byline = _split_title_authors(lines[rest[0]]) if date and rest else None
        if date is None or byline is None:
            i += 1
            continue
        title, authors, affiliations = byline
        text = lines[rest[1]] if len(rest) > 1 and not _DATE_LINE.match(lines[rest[1]]) else None
        entries.append(
            SeedEntry(
                file,
                i + 1,
                PAPER_INDEX,
                title,
                text,
                truncated=bool(text and _ELLIPSIS.search(text)),
                authors=authors,
                affiliations=affiliations,
                categories=(_category(date["cat"]),),
                published=_iso_date(date["year"], date["mon"], date["day"]),
            )
        )
        i = (rest[1] if text else rest[0]) + 1
    return entries


def _parse_blog_index(file: str, lines: list[str]) -> list[SeedEntry]:
    """A single-line title block followed by a teaser block is a post; every other block is chrome.

    Teasers are cut mid-sentence without a marker, so one that does not end a sentence counts as truncated.
    """
    return [
        SeedEntry(file, start, BLOG_INDEX, title, teaser, truncated=not teaser.endswith(_SENTENCE_END))
        for start, title, teaser in _blog_pairs(_blocks(lines))
    ]


_PARSERS: dict[str, Callable[[str, list[str]], list[SeedEntry]]] = {
    RESEARCH_PAGE: _parse_research_page,
    ARXIV_LISTING: _parse_arxiv_listing,
    PAPER_INDEX: _parse_paper_index,
    BLOG_INDEX: _parse_blog_index,
}


def _blocks(lines: Sequence[str]) -> list[tuple[int, list[str]]]:
    """Return (1-based start line, lines) for each run of non-blank lines."""
    blocks: list[tuple[int, list[str]]] = []
    for i, line in enumerate(lines):
        if not line:
            continue
        if i > 0 and lines[i - 1] and blocks:
            blocks[-1][1].append(line)
        else:
            blocks.append((i + 1, [line]))
    return blocks


def _blog_pairs(blocks: list[tuple[int, list[str]]]) -> list[tuple[int, str, str]]:
    pairs: list[tuple[int, str, str]] = []
    i = 0
    while i + 1 < len(blocks):
        (start, head), (_, body) = blocks[i], blocks[i + 1]
        if len(head) == 1 and _looks_like_title(head[0]) and _looks_like_teaser(" ".join(body)):
            pairs.append((start, head[0], " ".join(body)))
            i += 2
        else:
            i += 1
    return pairs


def _looks_like_title(line: str) -> bool:
    words = line.split()
    return 1 <= len(words) <= 30 and len(line) <= 250 and not line.endswith((".", ",", ";", ":"))


def _looks_like_prose(line: str) -> bool:
    """An abstract or teaser: at least eight words, or a sentence of four or more."""
    words = line.split()
    return len(words) >= 8 or (len(words) >= 4 and line.endswith((".", "!", "?")))


_looks_like_teaser = _looks_like_prose


def _is_snippet(line: str) -> bool:
    return bool(_ELLIPSIS.search(line)) and len(line.split()) >= 8


def _split_title_authors(line: str) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
    """Split "TitleFirst Author, Second Author et al. · affil, affil" into its three parts.

    The first author's given name is glued to the title's last character, so the split point is the last
    capital letter that follows a non-space character and starts a plausible name (two to five name words).
    """
    byline, _, affil = line.partition(" \u00b7 ")
    byline = re.sub(r",?\s+et al\.?$", "", byline.strip())
    head, sep, others = byline.partition(", ")
    for m in reversed(list(re.finditer(r"(?<=\S)[A-Z](?=[a-z.\u00e0-\u00ff])", head))):
        title, first = head[: m.start()].strip(), head[m.start() :].strip()
        words = first.split()
        if title and 2 <= len(words) <= 5 and all(_NAME_WORD.match(w) for w in words):
            authors = (first, *(a.strip() for a in others.split(",") if a.strip())) if sep else (first,)
            affiliations = tuple(a.strip() for a in affil.split(",") if a.strip())
            return title, authors, affiliations
    return None


def _category(code: str) -> str:
    if "." in code:
        return code
    if code == "ML":
        return "stat.ML"
    return f"cs.{code}" if code in _CS_CLASSES else code


def _iso_date(year: str, month: str, day: str) -> str:
    return f"{int(year):04d}-{_MONTHS.index(month[:3].lower()) + 1:02d}-{int(day):02d}"


# ---------------------------------------------------------------------------------------------------------
# Merging


def merge_entries(entries: Iterable[SeedEntry]) -> list[Paper]:
    """Cluster entries that list the same work and return one Paper per cluster, in order of first appearance.

    Three rules, each explainable on its own (seeds/README.md):
    1. equal normalised titles;
    2. copies of one text: the shorter is a word-prefix of the longer (>= 12 words; a "..." snippet may end
       in a cut word), or both open with the same 20 words, or they are identical;
    3. a blog post joins the paper whose title+abstract shares the most IDF-weighted rare terms with the post's
       title+teaser, when that weight clears a conservative threshold and twice the runner-up, and the
       paper's cluster holds nothing from the post's file.
    """
    items = sorted(set(entries), key=lambda e: (e.file, e.line))
    groups = _UnionFind(len(items))
    titles: dict[str, int] = {}
    for i, entry in enumerate(items):
        key = " ".join(_words(entry.title))
        if key:
            groups.union(titles.setdefault(key, i), i)
    words = [_complete_words(e) for e in items]
    buckets: dict[tuple[str, ...], list[int]] = {}
    for i, ws in enumerate(words):
        buckets.setdefault(tuple(ws[: MIN_PREFIX_WORDS - 1]), []).append(i)
    for bucket in buckets.values():
        for n, i in enumerate(bucket):
            for j in bucket[n + 1 :]:
                if _same_text(items[i], words[i], items[j], words[j]):
                    groups.union(i, j)
    _merge_blog_posts(items, groups)
    clusters: dict[int, list[SeedEntry]] = {}
    for i, entry in enumerate(items):
        clusters.setdefault(groups.find(i), []).append(entry)
    return [_build_paper(members) for members in clusters.values()]


def seed_key(paper: Paper) -> str:
    """Return a key that identifies a merged seed paper across reloads and small seed-file edits.

    It hashes the first 20 normalised words of the abstract. Every copy of one abstract starts the same way,
    so adding or dropping a source keeps the key; case, punctuation, quote and whitespace edits don't change
    it. Shorter abstracts are hashed whole, with the title. Within one `parse_seeds` result the keys are
    unique, because entries that share these words are merged (rules 1 and 2 of `merge_entries`).
    """
    words = _words(paper.abstract)
    if paper.abstract.endswith("\u2026") and not paper.abstract.endswith(" \u2026"):
        words = words[:-1]  # the cut last word
    if len(words) >= KEY_WORDS:
        basis = "a:" + " ".join(words[:KEY_WORDS])
    else:
        basis = "t:" + " ".join(_words(paper.title)) + "|a:" + " ".join(words)
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:20]


def _build_paper(members: list[SeedEntry]) -> Paper:
    index = [e for e in members if e.kind == PAPER_INDEX]
    return Paper(
        title=_best_title(members),
        abstract=_best_abstract(members),
        authors=index[0].authors if index else (),
        affiliations=index[0].affiliations if index else (),
        categories=index[0].categories if index else (),
        primary_category=index[0].categories[0] if index and index[0].categories else None,
        published=index[0].published if index else None,
        origin="seed",
        sources=tuple(e.source_ref() for e in members),
    )


def _rank(kind: str, order: tuple[str, ...]) -> int:
    return order.index(kind) if kind in order else len(order)


def _best_title(members: list[SeedEntry]) -> str | None:
    titled = [e for e in members if e.title]
    return min(titled, key=lambda e: (_rank(e.kind, TITLE_PREFERENCE), e.file, e.line)).title if titled else None


def _best_abstract(members: list[SeedEntry]) -> str:
    """The longest untruncated abstract; a blog teaser only when no paper listing has text; a cut text ends "…"."""
    texts = [e for e in members if e.clean_text]
    pool = [e for e in texts if e.kind != BLOG_INDEX] or texts
    if not pool:
        return ""
    whole = [e for e in pool if not e.truncated]
    best = max(whole or pool, key=lambda e: (len(e.clean_text), -_rank(e.kind, ABSTRACT_PREFERENCE)))
    if not best.truncated:
        return best.clean_text
    return best.clean_text + (" \u2026" if best.clean_text.endswith(_SENTENCE_END) else "\u2026")


def _words(text: str | None) -> list[str]:
    text = unicodedata.normalize("NFKC", text or "").lower().replace("\u2019", "'")
    return re.findall(r"[^\W_]+", text)


def _complete_words(entry: SeedEntry) -> list[str]:
    """The text's normalised words, without a last word that a truncation may have cut."""
    words = _words(entry.clean_text)
    cut = entry.truncated and not entry.clean_text.endswith(_SENTENCE_END)
    return words[:-1] if cut else words


def _same_text(a: SeedEntry, wa: list[str], b: SeedEntry, wb: list[str]) -> bool:
    """True when two texts are copies of one abstract (rule 2 of `merge_entries`)."""
    if wa and wa == wb:
        return True
    if len(wa) >= KEY_WORDS and len(wb) >= KEY_WORDS and wa[:KEY_WORDS] == wb[:KEY_WORDS]:
        return True
    (short, ws), (_, wl) = sorted(((a, wa), (b, wb)), key=lambda pair: len(pair[1]))
    if len(ws) < MIN_PREFIX_WORDS - 1 or ws != wl[: len(ws)]:
        return False
    if not (short.truncated and len(_words(short.clean_text)) > len(ws)):
        return len(ws) >= MIN_PREFIX_WORDS
    cut = _words(short.clean_text)[-1]
    return len(wl) > len(ws) and wl[len(ws)].startswith(cut)


# Blog posts announce papers in their own words, so they are matched on shared rare terms, not on text.

_STOPWORDS = frozenset(
    """a about above after again against all also although an and any are as at be because been before
    being both but by can could did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its itself just more most much no nor not now
    of off on once only or other our ours out over own same she should so some such than that the their
    theirs them then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your we've we're it's using use used new via
    how various recent recently many well often however yet still including several different one two
    three first make making""".split()  # noqa: SIM905
)
_PREFIXES = frozenset("pre post self non multi co re sub semi anti state art".split())  # noqa: SIM905


def _stem(word: str) -> str:
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _terms(text: str) -> set[str]:
    """Stemmed content words, hyphenated compounds joined ("gpt3", "pretrain") and adjacent-word bigrams."""
    raw = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    content: list[str] = []
    for chunk in re.findall(r"[^\W_]+(?:[-\u2010][^\W_]+)*", raw):
        parts = [p for p in re.split(r"[-\u2010]", chunk) if p not in _STOPWORDS and p not in _PREFIXES]
        if "-" in chunk or "\u2010" in chunk:
            content.append(_stem(re.sub(r"[-\u2010]", "", chunk)))
        content.extend(_stem(p) for p in parts if len(p) > 1)
    content = [t for t in content if t not in _STOPWORDS]
    return set(content) | {f"{x} {y}" for x, y in itertools.pairwise(content)}


def _merge_blog_posts(items: list[SeedEntry], groups: _UnionFind) -> None:
    clusters = groups.clusters()
    docs = {r: set().union(*(_entry_terms(items[i]) for i in members)) for r, members in clusters.items()}
    files = {r: {items[i].file for i in members} for r, members in clusters.items()}
    papers = [r for r, members in clusters.items() if any(items[i].kind != BLOG_INDEX for i in members)]
    df = Counter(term for terms in docs.values() for term in terms)
    idf = {term: math.log(len(docs) / n) for term, n in df.items() if n <= RARE_MAX_CLUSTERS}
    proposals: list[tuple[float, int, int]] = []
    for post in clusters.keys() - set(papers):
        scored = sorted(
            ((sum(idf.get(t, 0.0) for t in docs[post] & docs[r]), r) for r in papers if not files[post] & files[r]),
            reverse=True,
        )
        if not scored:
            continue
        best, runner_up = scored[0][0], scored[1][0] if len(scored) > 1 else 0.0
        if best >= BLOG_MATCH_MIN_SCORE and best >= BLOG_MATCH_MIN_RATIO * runner_up:
            proposals.append((best, post, scored[0][1]))
    for _, post, paper in sorted(proposals, reverse=True):
        if not files[post] & files[paper]:
            files[paper] |= files.pop(post)
            groups.union(post, paper)


def _entry_terms(entry: SeedEntry) -> set[str]:
    return _terms(f"{entry.title or ''}\n{entry.clean_text}")


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)

    def clusters(self) -> dict[int, list[int]]:
        """Return root -> member indexes, in index order."""
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return out
