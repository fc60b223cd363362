"""Pure parsers for arXiv's feeds: Atom API pages (legacy and 2026 formats) and the RSS announcement feed.

Streaming over the known schema with `xml.etree.ElementTree.XMLPullParser`: each `<entry>` is turned
into a `Paper` as soon as it closes and then dropped, so a 2000-entry page never sits in memory as a
tree. Both API formats resolve to the same namespaced tags (the legacy one declares its prefixes
inline on each element), so one parser serves both; SOURCES.md §7 lists the differences.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .errors import ArxivError
from .models import Paper, SourceRef

ATOM = "{http://www.w3.org/2005/Atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
ARXIV = "{http://arxiv.org/schemas/atom}"
DC = "{http://purl.org/dc/elements/1.1/}"

ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
"""RSS `arxiv:announce_type` values (arXiv/arxiv-feed also lists `absonly`)."""

_CHUNK = 1 << 16
_ID_RE = re.compile(r"^(?P<id>.+?)(?:v(?P<v>\d+))?$")
_ABS_RE = re.compile(r"^(?:https?://)?(?:export\.)?arxiv\.org/abs/", re.I)
_OAI_PREFIX = "oai:arXiv.org:"


class ArxivFeedError(ArxivError):
    """arXiv (or something in between) sent a body that is not a complete arXiv feed: truncated or not XML."""


@dataclass(frozen=True)
class FeedPage:
    """One parsed API response: its papers and the opensearch totals that drive paging."""

    papers: list[Paper]
    total: int | None = None
    """opensearch:totalResults: how many results the whole query has."""
    start: int | None = None
    """opensearch:startIndex (0-based) of this page."""
    per_page: int | None = None
    """opensearch:itemsPerPage as the server echoed it."""
    title: str | None = None
    """The feed title; arXiv puts the canonicalised query in it."""
    error: str | None = None
    """The message of an Atom error entry (`<id>…/api/errors#…`), else None."""
    error_id: str | None = None


@dataclass(frozen=True)
class Announcement:
    """One item of the RSS announcement feed: the paper and how it was announced that day."""

    paper: Paper
    announce_type: str
    """new | cross | replace | replace-cross (see ANNOUNCE_TYPES)."""


def split_arxiv_id(raw: str) -> tuple[str, int | None]:
    """Return (versionless id, version) for `2401.01234v2`, `hep-th/9711200`, an abs URL or an OAI id."""
    text = _ABS_RE.sub("", raw.strip())
    if text.startswith(_OAI_PREFIX):
        text = text[len(_OAI_PREFIX) :]
    if text.lower().startswith("arxiv:"):
        text = text[6:]
    match = _ID_RE.match(text)
    if match is None:
        return text, None
    version = match.group("v")
    return match.group("id"), int(version) if version else None


def normalize_space(text: str | None) -> str:
    """Collapse every run of whitespace (hard wraps, leading blanks) to one space and strip."""
    return " ".join((text or "").split())


def to_utc_iso(text: str | None) -> str | None:
    """Return an Atom or RFC 822 timestamp as ISO 8601 UTC with seconds; None stays None."""
    if not text or not text.strip():
        return None
    text = text.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


def _chunks(data: bytes | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for offset in range(0, len(view), _CHUNK):
            yield bytes(view[offset : offset + _CHUNK])
    else:
        yield from data


def _pull(data: bytes | Iterable[bytes], what: str) -> Iterator[ET.Element]:
    """Yield each element as it closes, turning any XML error or a missing end into ArxivFeedError."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("end",))
    seen = 0
    try:
        for chunk in _chunks(data):
            seen += len(chunk)
            parser.feed(chunk)
            yield from _closed(parser)
        parser.close()
        yield from _closed(parser)
    except ET.ParseError as exc:
        raise ArxivFeedError(
            f"arXiv sent a truncated or malformed {what} ({exc}, after {seen} bytes)", bytes=seen
        ) from None


def _closed(parser: ET.XMLPullParser[ET.Element]) -> Iterator[ET.Element]:
    """Yield the elements the parser has closed so far (it only reports "end" events)."""
    for event in parser.read_events():
        elem = event[-1]
        if isinstance(elem, ET.Element):
            yield elem


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


_ID, _TITLE, _SUMMARY, _AUTHOR, _NAME = f"{ATOM}id", f"{ATOM}title", f"{ATOM}summary", f"{ATOM}author", f"{ATOM}name"
_CATEGORY, _PUBLISHED, _UPDATED = f"{ATOM}category", f"{ATOM}published", f"{ATOM}updated"
_PRIMARY, _AFFILIATION = f"{ARXIV}primary_category", f"{ARXIV}affiliation"
_TEXT_FIELDS = {f"{ARXIV}doi": "doi", f"{ARXIV}journal_ref": "journal_ref", f"{ARXIV}comment": "comment"}


def _entry_to_paper(entry: ET.Element, raw_id: str) -> Paper:
    """Turn one API `<entry>` into a Paper in a single pass over its children."""
    arxiv_id, version = split_arxiv_id(raw_id)
    fields: dict[str, str | None] = {}
    authors: list[str] = []
    affiliations: list[str] = []
    categories: list[str] = []
    primary = ""
    for child in entry:
        tag = child.tag
        if tag == _AUTHOR:
            for part in child:
                if part.tag == _NAME:
                    name = normalize_space(part.text)
                    if name:
                        authors.append(name)
                elif part.tag == _AFFILIATION:
                    aff = normalize_space(part.text)
                    if aff and aff not in affiliations:
                        affiliations.append(aff)
        elif tag == _CATEGORY:
            term = (child.get("term") or "").strip()
            if term and term not in categories:
                categories.append(term)
        elif tag == _PRIMARY:
            primary = (child.get("term") or "").strip()
        elif tag in _TEXT_FIELDS:
            fields[_TEXT_FIELDS[tag]] = normalize_space(child.text) or None
        elif tag in (_TITLE, _SUMMARY, _PUBLISHED, _UPDATED):
            fields[tag] = child.text
    if primary and primary not in categories:
        categories.insert(0, primary)
    return Paper(
        title=normalize_space(fields.get(_TITLE)) or None,
        abstract=normalize_space(fields.get(_SUMMARY)),
        authors=tuple(authors),
        affiliations=tuple(affiliations),
        arxiv_id=arxiv_id,
        version=version,
        categories=tuple(categories),
        primary_category=primary or (categories[0] if categories else None),
        published=to_utc_iso(fields.get(_PUBLISHED)),
        updated=to_utc_iso(fields.get(_UPDATED)),
        doi=fields.get("doi"),
        journal_ref=fields.get("journal_ref"),
        comment=fields.get("comment"),
        origin="arxiv",
        sources=_ARXIV_SOURCE,
    )


_ARXIV_SOURCE = (SourceRef(file="arxiv", line=0, kind="arxiv"),)


def parse_atom(data: bytes | Iterable[bytes]) -> FeedPage:
    """Parse an arXiv API Atom response (bytes or byte chunks) into a FeedPage.

    Raises ArxivFeedError when the body is truncated, is not XML, or is not an Atom feed.
    An Atom error entry does not raise: it comes back in `FeedPage.error` for the caller to classify.
    """
    papers: list[Paper] = []
    error: str | None = None
    error_id: str | None = None
    root: ET.Element | None = None
    entry_tag = f"{ATOM}entry"
    for elem in _pull(data, "Atom feed"):
        root = elem
        if elem.tag != entry_tag:
            continue
        raw_id = (elem.findtext(_ID) or "").strip()
        if "/api/errors" in raw_id:
            error = normalize_space(elem.findtext(_SUMMARY)) or "unknown arXiv API error"
            error_id = raw_id
        elif raw_id:  # an entry without an id cannot be stored or deduplicated
            papers.append(_entry_to_paper(elem, raw_id))
        elem.clear()
    if root is None:
        raise ArxivFeedError("arXiv sent an empty body instead of an Atom feed")
    if root.tag != f"{ATOM}feed":
        raise ArxivFeedError(f"expected an Atom <feed>, got <{_local(root.tag)}>")
    return FeedPage(
        papers=papers,
        total=_int(root.findtext(f"{OPENSEARCH}totalResults")),
        start=_int(root.findtext(f"{OPENSEARCH}startIndex")),
        per_page=_int(root.findtext(f"{OPENSEARCH}itemsPerPage")),
        title=normalize_space(root.findtext(_TITLE)) or None,
        error=error,
        error_id=error_id,
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _split_creators(text: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split an RSS `dc:creator` ("A, B (Univ X), C") into names and affiliations."""
    names: list[str] = []
    affiliations: list[str] = []
    depth = 0
    current: list[str] = []
    aff: list[str] = []
    for ch in (text or "") + ",":
        if ch == "(":
            depth += 1
            if depth == 1:
                continue
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                affiliations.append(normalize_space("".join(aff)))
                aff = []
                continue
        if depth:
            aff.append(ch)
        elif ch == ",":
            name = normalize_space("".join(current))
            if name:
                names.append(name)
            current = []
        else:
            current.append(ch)
    return tuple(names), tuple(dict.fromkeys(a for a in affiliations if a))


_DESCRIPTION_RE = re.compile(r"^arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>\S+)\s*(?:Abstract:)?", re.S)


def _item_to_announcement(item: ET.Element) -> Announcement:
    description = item.findtext("description") or ""
    match = _DESCRIPTION_RE.match(description.strip())
    guid = item.findtext("guid") or (match.group("id") if match else "") or item.findtext("link") or ""
    arxiv_id, version = split_arxiv_id(guid)
    abstract = description[match.end() :] if match else description
    announce = normalize_space(item.findtext(f"{ARXIV}announce_type")) or (match.group("type") if match else "new")
    authors, affiliations = _split_creators(item.findtext(f"{DC}creator"))
    categories = tuple(dict.fromkeys(normalize_space(c.text) for c in item.iterfind("category") if c.text))
    when = to_utc_iso(item.findtext("pubDate"))
    paper = Paper(
        title=normalize_space(item.findtext("title")) or None,
        abstract=normalize_space(abstract),
        authors=authors,
        affiliations=affiliations,
        arxiv_id=arxiv_id,
        version=version,
        categories=categories,
        primary_category=categories[0] if categories else None,
        doi=normalize_space(item.findtext(f"{ARXIV}DOI")) or None,
        journal_ref=normalize_space(item.findtext(f"{ARXIV}journal_reference")) or None,
        origin="arxiv",
        announced=when[:10] if when else None,
        sources=(SourceRef(file="arxiv-rss", line=0, kind="arxiv_listing"),),
    )
    return Announcement(paper=paper, announce_type=announce)


def parse_rss(data: bytes | Iterable[bytes]) -> list[Announcement]:
    """Parse an rss.arxiv.org RSS 2.0 announcement feed into Announcements, in feed order.

    The item's first `<category>` is taken as the primary category (the RSS feed does not mark it).
    A `Feed error for query` channel (HTTP 400 from rss.arxiv.org) raises ArxivFeedError with its text.
    """
    out: list[Announcement] = []
    channel_title = ""
    channel_description = ""
    for elem in _pull(data, "RSS feed"):
        if elem.tag == "item":
            out.append(_item_to_announcement(elem))
            elem.clear()
        elif elem.tag == "title" and not channel_title:
            channel_title = normalize_space(elem.text)
        elif elem.tag == "description" and not channel_description:
            channel_description = normalize_space(elem.text)
    if channel_title.startswith("Feed error for query"):
        raise ArxivFeedError(f"arXiv RSS refused the query: {channel_description or channel_title}")
    return out
