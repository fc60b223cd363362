"""A polite arXiv API client: one connection, one request every 3 s, classified retries, a daily cache.

arXiv's terms of use (https://info.arxiv.org/help/api/tou.html) ask for no more than one request
every three seconds, a single connection at a time, and a descriptive User-Agent; the API user
manual says results refresh once a day and should be cached. Every request goes through
`base_url` (settings.arxiv_api_url, `DIGESTBOT_ARXIV_API_URL`).

Retried (bounded, exponential back-off, `Retry-After` honoured): timeouts and connection errors,
429 and 5xx, a truncated or malformed body, and a page that comes back empty while
`opensearch:totalResults` promises more. Not retried: other 4xx and an Atom error entry, which
raise ArxivHTTPError naming the query.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from .arxiv_feed import Announcement, ArxivFeedError, FeedPage, parse_atom, parse_rss
from .errors import ArxivEmptyPageError, ArxivError, ArxivHTTPError, ArxivThrottledError
from .models import Paper

if TYPE_CHECKING:
    from sqlite_utils import Database

    from .settings import Settings

log = logging.getLogger(__name__)

MAX_RESULTS_PER_QUERY = 30_000
"""arXiv answers max_results above 30000 with HTTP 400 (API user manual §3.3.1)."""
MAX_PAGE_SIZE = 2000
"""arXiv serves results in slices of at most 2000 (API user manual §3.3.1)."""
MAX_BACKOFF_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 300.0
"""A longer Retry-After than this fails the fetch at once rather than blocking the caller."""
ANNOUNCE_TZ = ZoneInfo("America/New_York")
ANNOUNCE_WEEKDAYS = {6, 0, 1, 2, 3}
"""arXiv announces at 20:00 US Eastern, Sunday to Thursday (https://info.arxiv.org/help/availability.html)."""

ProgressFn = Callable[[int, int, "int | None"], None]
"""progress(pages_done, papers_so_far, total_results_or_None)."""


def announcement_day(now: datetime) -> str:
    """Return the ISO date of the latest arXiv announcement (20:00 ET, Sun-Thu) at or before `now`."""
    local = now.astimezone(ANNOUNCE_TZ)
    mark = local.replace(hour=20, minute=0, second=0, microsecond=0)
    if local < mark:
        mark -= timedelta(days=1)
    while mark.weekday() not in ANNOUNCE_WEEKDAYS:
        mark -= timedelta(days=1)
    return mark.date().isoformat()


@dataclass
class ClientStats:
    """Counters a fetch run records: HTTP requests sent, pages parsed, retries, cache hits."""

    requests: int = 0
    pages: int = 0
    retries: int = 0
    cache_hits: int = 0


@dataclass
class QueryResult:
    """Everything one paged query returned, filled in as pages arrive (so a failure keeps the partial result)."""

    query: str
    papers: list[Paper] = field(default_factory=list)
    total: int | None = None
    pages: int = 0
    stopped: str = ""
    """Why paging stopped: total, window, no-new-ids, cap, empty."""


class HttpCache:
    """Validated response bodies in the `http_cache` table, valid for one announcement day per URL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def key(url: str) -> str:
        """Return the cache key for a full request URL."""
        return hashlib.sha256(url.encode()).hexdigest()

    def get(self, url: str, day: str) -> bytes | None:
        """Return the body cached for `url` on announcement day `day`, if any."""
        rows = list(self.db.query("SELECT body FROM http_cache WHERE key = ? AND day = ?", [self.key(url), day]))
        return bytes(rows[0]["body"]) if rows else None

    def put(self, url: str, day: str, status: int, body: bytes, now: datetime) -> None:
        """Store a validated body for `url`; bodies from earlier announcement days are dropped.

        An earlier day's body can never be served again (`get` asks for today's), and the window in a
        fetch URL moves every day, so without the prune every day's pages would pile up for good.
        """
        self.db.execute("DELETE FROM http_cache WHERE day < ?", [day])
        self.db.table("http_cache").upsert(
            {
                "key": self.key(url),
                "day": day,
                "url": url,
                "status": status,
                "body": body,
                "fetched_at": now.astimezone(UTC).isoformat(timespec="seconds"),
            },
            pk="key",
        )


class _Retry(Exception):
    """Internal: this attempt failed in a retryable way; `error` is what to raise when retries run out."""

    def __init__(self, error: ArxivError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Pacer:
    """One per arXiv host and clock in this process: every client's requests to it queue on one lock.

    Holding the lock from the politeness wait to the end of the response gives arXiv one connection
    at a time and one request every `delay_seconds`, however many clients exist (a scheduled fetch
    and a `/paper` lookup each build their own).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: float | None = None


_PACERS: dict[tuple[str, Callable[[], float]], _Pacer] = {}
_PACERS_LOCK = threading.Lock()


def _pacer_for(base_url: str, monotonic: Callable[[], float]) -> _Pacer:
    """Return the process-wide pacer for `base_url`'s host as measured by `monotonic`."""
    key = (urlsplit(base_url).netloc.lower(), monotonic)
    with _PACERS_LOCK:
        return _PACERS.setdefault(key, _Pacer())


class ArxivClient:
    """Talk to the arXiv API at `base_url`, politely.

    :param delay_seconds: minimum seconds between two requests (arXiv ToU: 3).
    :param sleep: how to wait (injected so tests never really wait); `monotonic` is the matching clock.
    :param now: wall clock, used for the announcement day of the cache and HTTP-date Retry-After values.
    :param cache: an HttpCache, or None for no caching.
    :param max_total: never page past this many results (arXiv's own limit is 30,000).
    """

    def __init__(
        self,
        base_url: str,
        *,
        user_agent: str,
        delay_seconds: float = 3.0,
        page_size: int = 500,
        timeout: float = 30.0,
        retries: int = 4,
        rss_url: str | None = None,
        max_total: int = MAX_RESULTS_PER_QUERY,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utcnow,
        cache: HttpCache | None = None,
    ) -> None:
        self.base_url = base_url
        self.rss_url = rss_url
        self.delay_seconds = delay_seconds
        self.page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        self.retries = max(0, retries)
        self.max_total = min(max_total, MAX_RESULTS_PER_QUERY)
        self.sleep = sleep
        self.monotonic = monotonic
        self.now = now
        self.cache = cache
        self.stats = ClientStats()
        self._pacer = _pacer_for(base_url, monotonic)
        self._http = httpx.Client(
            headers={"User-Agent": user_agent},
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=True,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, db: Database | None = None, now: Callable[[], datetime] = _utcnow, **kw: Any
    ) -> ArxivClient:
        """Build a client from Settings, caching in `db` when given; keyword arguments override settings."""
        options: dict[str, Any] = {
            "user_agent": settings.user_agent,
            "delay_seconds": settings.arxiv_delay_seconds,
            "page_size": settings.arxiv_page_size,
            "timeout": settings.arxiv_timeout_seconds,
            "retries": settings.arxiv_retries,
            "rss_url": settings.arxiv_rss_url,
            "now": now,
            "cache": HttpCache(db) if db is not None else None,
        }
        options.update(kw)
        return cls(settings.arxiv_api_url, **options)

    def close(self) -> None:
        """Close the underlying connection."""
        self._http.close()

    def __enter__(self) -> ArxivClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request ---------------------------------------------------------------------------

    def _wait_turn(self, at_least: float = 0.0) -> None:
        """Sleep until this host may be asked again; call with `self._pacer.lock` held."""
        wait = at_least
        if self._pacer.last is not None:
            wait = max(wait, self._pacer.last + self.delay_seconds - self.monotonic())
        if wait > 0:
            self.sleep(wait)

    def _paced_send(self, url: str, attempt: int, at_least: float = 0.0) -> httpx.Response:
        with self._pacer.lock:
            self._wait_turn(at_least)
            return self._send(url, None, attempt)

    def _send(self, url: str, params: dict[str, Any] | None, attempt: int) -> httpx.Response:
        self.stats.requests += 1
        try:
            return self._http.get(url, params=params)
        except httpx.TimeoutException as exc:
            raise _Retry(ArxivError(f"arXiv did not answer in time ({url})", url=url, attempt=attempt)) from exc
        except httpx.TransportError as exc:
            raise _Retry(ArxivError(f"could not reach arXiv at {url}: {exc}", url=url, attempt=attempt)) from exc
        finally:
            self._pacer.last = self.monotonic()

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, (parsedate_to_datetime(value) - self.now()).total_seconds())
        except (TypeError, ValueError):
            return None

    def _check_status(self, response: httpx.Response, query: str, attempt: int) -> None:
        status = response.status_code
        url = str(response.url)
        if status < 400:
            return
        if status == 429 or status >= 500:
            retry_after = self._retry_after(response)
            error_cls = ArxivThrottledError if status in (429, 503) else ArxivHTTPError
            error = error_cls(
                f"arXiv is busy (HTTP {status}) and kept refusing the query {query!r}; try again later",
                url=url,
                attempt=attempt,
                status=status,
                retry_after=retry_after,
            )
            if retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
                raise error
            raise _Retry(error, wait=retry_after)
        message = _error_text(response.content) or response.reason_phrase
        raise ArxivHTTPError(
            f"arXiv rejected the query {query!r} (HTTP {status}): {message}",
            url=url,
            attempt=attempt,
            status=status,
            query=query,
        )

    def _validate(self, page: FeedPage, url: str, query: str, start: int, attempt: int) -> None:
        if page.error:
            raise ArxivHTTPError(
                f"arXiv rejected the query {query!r}: {page.error}", url=url, attempt=attempt, status=200, query=query
            )
        if not page.papers and page.total is not None and page.total > start:
            raise _Retry(
                ArxivEmptyPageError(
                    f"arXiv sent an empty page at start={start} although it reported {page.total} results "
                    f"for {query!r}; the fetch is incomplete",
                    url=url,
                    attempt=attempt,
                    raw=None,
                    start=start,
                    total=page.total,
                )
            )

    def _backoff(self, attempt: int) -> float:
        return min(MAX_BACKOFF_SECONDS, self.delay_seconds * 2.0 ** (attempt - 1))

    def request_page(self, params: dict[str, Any], *, query: str, start: int = 0) -> FeedPage:
        """GET one API page with these query parameters: cached, throttled, retried, validated."""
        url = str(httpx.URL(self.base_url).copy_merge_params(params))
        day = announcement_day(self.now())
        if self.cache is not None:
            body = self.cache.get(url, day)
            if body is not None:
                self.stats.cache_hits += 1
                return parse_atom(body)
        wait = 0.0
        for attempt in range(1, self.retries + 2):
            try:
                response = self._paced_send(url, attempt, wait)
                self._check_status(response, query, attempt)
                page = _parse(response.content, url, attempt)
                self._validate(page, url, query, start, attempt)
            except _Retry as retry:
                if attempt > self.retries:
                    raise retry.error from None
                self.stats.retries += 1
                wait = max(retry.wait or 0.0, self._backoff(attempt))
                log.info("arXiv attempt %d failed (%s); retrying in %.0f s", attempt, retry.error, wait)
                continue
            self.stats.pages += 1
            if self.cache is not None:
                self.cache.put(url, day, response.status_code, response.content, self.now())
            return page
        raise AssertionError("unreachable")

    # -- queries -------------------------------------------------------------------------------

    def search_page(
        self,
        query: str,
        *,
        start: int = 0,
        max_results: int | None = None,
        sort_by: str = "submittedDate",
        sort_order: str = "descending",
    ) -> FeedPage:
        """Return one page of results for an arXiv `search_query`."""
        params = {
            "search_query": query,
            "start": start,
            "max_results": max_results or self.page_size,
            "sortBy": sort_by,
            "sortOrder": sort_order,
        }
        return self.request_page(params, query=query, start=start)

    def fetch_query(
        self,
        query: str,
        *,
        window_start: str | None = None,
        result: QueryResult | None = None,
        progress: ProgressFn | None = None,
    ) -> QueryResult:
        """Page through every result of `query`, newest first, into `result` (created if None).

        Stops at totalResults, at 30,000 results, when a page adds no id not seen before (a server
        that ignores `start`), or once a page reaches past `window_start` (ISO) while also holding
        papers inside it. Entries are never dropped for their dates: the query defines the window.
        """
        result = result or QueryResult(query=query)
        seen = {p.arxiv_id for p in result.papers}
        start = 0
        while True:
            size = min(self.page_size, self.max_total - start)
            page = self.search_page(query, start=start, max_results=size)
            result.pages += 1
            result.total = page.total if page.total is not None else result.total
            fresh = [p for p in page.papers if p.arxiv_id not in seen]
            seen.update(p.arxiv_id for p in fresh)
            result.papers.extend(fresh)
            if progress:
                progress(result.pages, len(result.papers), result.total)
            result.stopped = _stop_reason(page, fresh, start, len(seen), window_start, self.max_total)
            if result.stopped:
                return result
            start += len(page.papers)

    def search_papers(self, query: str, max_results: int = 5) -> list[Paper]:
        """Return the best `max_results` matches for a `ti:`/`abs:` query, by relevance."""
        page = self.search_page(query, max_results=max_results, sort_by="relevance")
        return page.papers

    def lookup_id(self, arxiv_id: str) -> Paper | None:
        """Return the latest version of `arxiv_id` (or the asked `vN`), or None if arXiv has no such paper.

        An id arXiv calls malformed also gives None; network trouble raises ArxivError.
        """
        params = {"id_list": arxiv_id.strip(), "max_results": 1}
        try:
            page = self.request_page(params, query=f"id_list={arxiv_id}")
        except ArxivHTTPError as exc:
            if getattr(exc, "status", None) in (200, 400):
                return None
            raise
        return page.papers[0] if page.papers else None

    def announcements(self, categories: Sequence[str]) -> list[Announcement]:
        """Return today's RSS announcements for `categories` (new, cross, replace, replace-cross)."""
        if not self.rss_url:
            raise ArxivError("no arXiv RSS URL configured (DIGESTBOT_ARXIV_RSS_URL)", url=None, attempt=0)
        url = self.rss_url + "+".join(categories)
        try:
            response = self._paced_send(url, 1)
        except _Retry as retry:
            raise retry.error from None
        if response.status_code >= 400:
            raise ArxivHTTPError(
                f"arXiv RSS refused {url} (HTTP {response.status_code}): {_rss_error(response.content)}",
                url=url,
                attempt=1,
                status=response.status_code,
            )
        return parse_rss(response.content)


def _parse(body: bytes, url: str, attempt: int) -> FeedPage:
    try:
        return parse_atom(body)
    except ArxivFeedError as exc:
        raise _Retry(ArxivFeedError(f"{exc} from {url}", url=url, attempt=attempt)) from None


def _stop_reason(page: FeedPage, fresh: list[Paper], start: int, seen: int, window_start: str | None, cap: int) -> str:
    if not page.papers:
        return "empty"
    if not fresh:
        return "no-new-ids"
    if page.total is not None and (seen >= page.total or start + len(page.papers) >= page.total):
        return "total"
    if start + len(page.papers) >= cap:
        return "cap"
    if window_start and _straddles(page.papers, window_start):
        return "window"
    return ""


def _straddles(papers: Iterable[Paper], window_start: str) -> bool:
    """True when the page holds papers inside the window and its oldest one falls before it."""
    dates = [p.published for p in papers if p.published]
    return bool(dates) and min(dates) < window_start <= max(dates)


def _error_text(body: bytes) -> str:
    try:
        page = parse_atom(body)
    except ArxivFeedError:
        return " ".join(body[:200].decode("utf-8", "replace").split())
    return page.error or ""


def _rss_error(body: bytes) -> str:
    try:
        parse_rss(body)
    except ArxivFeedError as exc:
        return str(exc)
    return ""


def build_window_query(categories: Sequence[str], start: datetime, end: datetime) -> str:
    """Return `(cat:a OR cat:b) AND submittedDate:[YYYYMMDDHHMM TO YYYYMMDDHHMM]` (GMT, as arXiv expects)."""
    cats = " OR ".join(f"cat:{c}" for c in categories)
    fmt = "%Y%m%d%H%M"
    lo = start.astimezone(UTC).strftime(fmt)
    hi = end.astimezone(UTC).strftime(fmt)
    return f"({cats}) AND submittedDate:[{lo} TO {hi}]"
