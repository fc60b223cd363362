"""ArxivClient against a real loopback HTTP server (port 0) serving real arXiv bytes, one fault at a time."""

from __future__ import annotations

import re
import socket
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import REALDATA

from digests.arxiv_api import ArxivClient, HttpCache, announcement_day, build_window_query
from digests.arxiv_feed import ArxivFeedError
from digests.errors import ArxivEmptyPageError, ArxivError, ArxivHTTPError, ArxivThrottledError
from digests.settings import load_settings
from digests.store import open_db

ENTRY_RE = re.compile(rb"<entry>.*?</entry>", re.DOTALL)
HEADER = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n"
    b'<feed xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom"'
    b' xmlns="http://www.w3.org/2005/Atom">\n  <id>https://arxiv.org/api/test</id>\n'
    b"  <title>arXiv Query: loopback</title>\n  <updated>2026-11-25T12:00:00Z</updated>\n"
)
ATOM_TYPE = {"Content-Type": "application/atom+xml; charset=utf-8"}


def real(name: str) -> bytes:
    return (REALDATA / name).read_bytes()


def real_entries() -> list[bytes]:
    """Every distinct real <entry> block from the recorded 2026 searches (160 papers)."""
    seen: dict[bytes, bytes] = {}
    for name in (
        "arxiv_api_2026_search_all-testing_start0_max100.xml",
        "arxiv_api_2026_search_cat-cs.AI_OR_cat-cs.LG_max50.xml",
        "arxiv_api_2026_search_all-testing_start10_max10.xml",
    ):
        for block in ENTRY_RE.findall(real(name)):
            key = re.search(rb"<id>(.*?)</id>", block).group(1)
            seen.setdefault(key, block)
    return list(seen.values())


def build_feed(entries: list[bytes], total: int, start: int = 0) -> bytes:
    """Wrap real entry blocks in a current-format feed with the given opensearch totals."""
    meta = (
        f"  <opensearch:itemsPerPage>{len(entries)}</opensearch:itemsPerPage>\n"
        f"  <opensearch:totalResults>{total}</opensearch:totalResults>\n"
        f"  <opensearch:startIndex>{start}</opensearch:startIndex>\n"
    ).encode()
    return HEADER + meta + b"\n".join(entries) + b"\n</feed>\n"


Reply = tuple[int, bytes, dict[str, str]]


class FakeArxiv:
    """A loopback arXiv: answers from a queue of replies (or a handler function), records every request."""

    def __init__(self) -> None:
        self.replies: deque[Reply | str] = deque()
        self.handler: Callable[[dict[str, list[str]]], Reply] | None = None
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                params = parse_qs(urlsplit(self.path).query)
                fake.requests.append({"path": self.path, "params": params, "headers": dict(self.headers)})
                reply = fake.replies.popleft() if fake.replies else fake.handler(params)  # type: ignore[misc]
                if reply == "hang":
                    fake.release.wait(10)
                    return
                if reply == "cut":
                    body = real("arxiv_api_2026_search_all-testing_start0_max10.xml")
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:2000])
                    self.close_connection = True
                    return
                status, body, headers = reply  # type: ignore[misc]
                self.send_response(status)
                for key, value in {**ATOM_TYPE, **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/query"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class FakeTime:
    """Injected sleep + monotonic clock: sleeping advances the clock, nothing really waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def arxiv():
    fake = FakeArxiv()
    yield fake
    fake.close()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def make_client(arxiv: FakeArxiv, fake_time: FakeTime):
    clients: list[ArxivClient] = []

    def make(**kw: Any) -> ArxivClient:
        settings = load_settings({"DIGESTBOT_ARXIV_API_URL": kw.pop("url", arxiv.url), "DIGESTBOT_HOME": "/tmp/x"})
        options: dict[str, Any] = {"sleep": fake_time.sleep, "monotonic": fake_time.monotonic, "now": lambda: NOW}
        options.update(kw)
        client = ArxivClient.from_settings(settings, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def ok(body: bytes, **headers: str) -> Reply:
    return 200, body, headers


QUERY = "(cat:cs.AI OR cat:cs.LG) AND submittedDate:[202611180000 TO 202611260000]"


def test_window_query_uses_gmt_minutes():
    start = datetime(2026, 11, 18, tzinfo=UTC)
    assert build_window_query(["cs.AI", "cs.LG"], start, NOW) == (
        "(cat:cs.AI OR cat:cs.LG) AND submittedDate:[202611180000 TO 202611251200]"
    )


def test_request_parameters_user_agent_and_politeness_delay(arxiv, make_client, fake_time):
    entries = real_entries()[:25]
    arxiv.handler = lambda q: ok(
        build_feed(entries[int(q["start"][0]) : int(q["start"][0]) + 10], 25, int(q["start"][0]))
    )
    result = make_client(page_size=10).fetch_query(QUERY)
    assert [r["params"]["start"] for r in arxiv.requests] == [["0"], ["10"], ["20"]]
    first = arxiv.requests[0]
    assert first["params"]["search_query"] == [QUERY]
    assert first["params"]["sortBy"] == ["submittedDate"] and first["params"]["sortOrder"] == ["descending"]
    assert first["params"]["max_results"] == ["10"]
    ua = first["headers"]["User-Agent"]
    assert ua.startswith("digestbot/") and "mailto:" in ua
    assert len(fake_time.sleeps) == 2 and all(s >= 3.0 for s in fake_time.sleeps)
    assert len(result.papers) == 25 and result.stopped == "total"


def unique_entries(start: int, count: int) -> list[bytes]:
    """`count` real entries given ids 2611.<start+i> so every page brings new papers."""
    pool = real_entries()
    return [
        re.sub(
            rb"<id>[^<]+</id>",
            f"<id>http://arxiv.org/abs/2611.{start + i:05d}v1</id>".encode(),
            pool[(start + i) % len(pool)],
            count=1,
        )
        for i in range(count)
    ]


def test_paging_never_passes_the_result_cap(arxiv, make_client):
    def handler(q):
        start, size = int(q["start"][0]), int(q["max_results"][0])
        return ok(build_feed(unique_entries(start, size), 10**6, start))

    arxiv.handler = handler
    result = make_client(page_size=20, max_total=50).fetch_query(QUERY)
    assert [(r["params"]["start"], r["params"]["max_results"]) for r in arxiv.requests] == [
        (["0"], ["20"]),
        (["20"], ["20"]),
        (["40"], ["10"]),
    ]
    assert result.stopped == "cap" and len(result.papers) == 50


def test_politeness_is_shared_by_every_client_of_one_host(arxiv, make_client, fake_time):
    # A scheduled fetch and each /paper lookup build their own client; arXiv still sees one request per 3 s.
    arxiv.handler = lambda q: ok(real("arxiv_api_2026_idlist_1207.7214.xml"))
    make_client().lookup_id("1207.7214")
    make_client().lookup_id("1207.7214")
    assert fake_time.sleeps == [3.0]
    other = FakeArxiv()
    try:
        other.handler = arxiv.handler
        make_client(url=other.url).lookup_id("1207.7214")  # another host keeps its own pace
    finally:
        other.close()
    assert fake_time.sleeps == [3.0] and len(arxiv.requests) == 2


def test_one_request_in_flight_across_threads(arxiv, make_client):
    body = real("arxiv_api_2026_idlist_1207.7214.xml")
    first, gate, lock = threading.Event(), threading.Event(), threading.Lock()
    inflight, peak = [0], [0]

    def handler(q):
        with lock:
            inflight[0] += 1
            peak[0] = max(peak[0], inflight[0])
        if not first.is_set():
            first.set()
            gate.wait(10)
        with lock:
            inflight[0] -= 1
        return ok(body)

    arxiv.handler = handler
    clients = [make_client(), make_client()]
    found: list[object] = []
    threads = [threading.Thread(target=lambda c=c: found.append(c.lookup_id("1207.7214"))) for c in clients]
    threads[0].start()
    assert first.wait(10)
    threads[1].start()
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(found) == 2 and all(found) and len(arxiv.requests) == 2 and peak[0] == 1


def test_page_size_is_capped_at_2000():
    assert ArxivClient("http://x/q", user_agent="t", page_size=5000).page_size == 2000
    assert ArxivClient("http://x/q", user_agent="t", max_total=10**6).max_total == 30000


def test_server_ignoring_start_and_max_results_is_read_once(arxiv, make_client):
    body = real("arxiv_api_2026_search_all-testing_start0_max100.xml")  # claims 214881 results, serves 100
    arxiv.handler = lambda q: ok(body)
    result = make_client(page_size=10).fetch_query(QUERY)
    assert len(result.papers) == 100 and result.stopped == "no-new-ids"
    assert len(arxiv.requests) == 2


def test_old_papers_are_kept_whatever_their_dates(arxiv, make_client):
    arxiv.replies.append(ok(build_feed(real_entries()[:40], 40)))
    result = make_client().fetch_query(QUERY, window_start="2026-11-18T00:00:00+00:00")
    assert len(result.papers) == 40


def test_paging_stops_when_a_page_crosses_the_window_start(arxiv, make_client):
    # cs.AI/cs.LG recording: 50 entries from 2026-07-10 newest first; window starts inside it
    arxiv.replies.append(ok(real("arxiv_api_2026_search_cat-cs.AI_OR_cat-cs.LG_max50.xml")))
    papers = make_client().fetch_query(QUERY, window_start="2026-07-10T17:59:00+00:00")
    assert papers.stopped == "window" and len(arxiv.requests) == 1 and len(papers.papers) == 50


def test_legacy_format_pages(arxiv, make_client):
    arxiv.replies.append(ok(real("arxiv_api_2016_legacy_search_au-del_maestro_10_of_31.xml")))
    arxiv.handler = lambda q: ok(real("arxiv_api_2016_legacy_search_au-del_maestro_AND_ti-quantum_criticality.xml"))
    result = make_client(page_size=10).fetch_query("au:del_maestro")
    assert len(result.papers) == 11  # 10, then one new id from the second page before no-new-ids
    assert result.papers[0].origin == "arxiv" and all(p.version for p in result.papers)


def test_429_honours_retry_after(arxiv, make_client, fake_time):
    arxiv.replies.extend([(429, b"Rate exceeded.", {"Retry-After": "17"}), ok(build_feed(real_entries()[:3], 3))])
    client = make_client()
    assert len(client.fetch_query(QUERY).papers) == 3
    assert max(fake_time.sleeps) >= 17 and client.stats.retries == 1 and client.stats.requests == 2


def test_503_backs_off_then_gives_up_as_throttled(arxiv, make_client, fake_time):
    arxiv.handler = lambda q: (503, real("arxiv_web_2026_rate_exceeded_body.txt"), {})
    client = make_client(retries=3)
    with pytest.raises(ArxivThrottledError, match="HTTP 503") as info:
        client.fetch_query(QUERY)
    assert len(arxiv.requests) == 4 and info.value.status == 503
    assert fake_time.sleeps == sorted(fake_time.sleeps) and fake_time.sleeps[-1] > fake_time.sleeps[0] >= 3


def test_retry_after_beyond_the_cap_fails_at_once(arxiv, make_client):
    arxiv.replies.append((429, b"", {"Retry-After": "86400"}))
    with pytest.raises(ArxivThrottledError) as info:
        make_client().fetch_query(QUERY)
    assert info.value.retry_after == 86400 and len(arxiv.requests) == 1


def test_timeout_is_retried(arxiv, make_client):
    arxiv.replies.extend(["hang", ok(build_feed(real_entries()[:2], 2))])
    client = make_client(timeout=0.3)
    assert len(client.fetch_query(QUERY).papers) == 2 and client.stats.retries == 1


def test_timeouts_until_retries_run_out(arxiv, make_client):
    arxiv.handler = lambda q: "hang"  # type: ignore[assignment,return-value]
    client = make_client(retries=1, timeout=0.2)
    with pytest.raises(ArxivError, match="did not answer in time"):
        client.fetch_query(QUERY)
    assert len(arxiv.requests) == 2


def test_connection_refused_is_retried_then_fails(make_client, fake_time):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = make_client(url=f"http://127.0.0.1:{port}/api/query", retries=2)
    with pytest.raises(ArxivError, match="could not reach arXiv") as info:
        client.fetch_query(QUERY)
    assert info.value.attempt == 3 and client.stats.requests == 3 and len(fake_time.sleeps) == 2


def test_body_cut_short_is_retried(arxiv, make_client):
    arxiv.replies.extend(["cut", ok(build_feed(real_entries()[:4], 4))])
    client = make_client()
    assert len(client.fetch_query(QUERY).papers) == 4 and client.stats.retries == 1


def test_truncated_xml_fails_after_bounded_retries(arxiv, make_client):
    body = real("arxiv_api_2026_search_all-testing_start0_max10.xml")
    arxiv.handler = lambda q: ok(body[: len(body) // 2])
    with pytest.raises(ArxivFeedError, match="truncated or malformed"):
        make_client(retries=2).fetch_query(QUERY)
    assert len(arxiv.requests) == 3


def test_http_400_error_entry_names_the_query_and_is_not_retried(arxiv, make_client):
    arxiv.replies.append((400, real("arxiv_api_2026_error_start_must_be_an_integer_http400.xml"), {}))
    with pytest.raises(ArxivHTTPError) as info:
        make_client().fetch_query(QUERY)
    assert "start must be an integer" in str(info.value) and QUERY in str(info.value)
    assert info.value.status == 400 and len(arxiv.requests) == 1


def test_http_200_error_entry_is_an_error_too(arxiv, make_client):
    arxiv.replies.append(ok(real("arxiv_api_2025-06_legacy_error_incorrect_id_format_PARTLY_RECONSTRUCTED.xml")))
    with pytest.raises(ArxivHTTPError, match="incorrect id format"):
        make_client().fetch_query(QUERY)
    assert len(arxiv.requests) == 1


def test_empty_first_page_with_results_promised_is_retried_then_fails(arxiv, make_client):
    arxiv.handler = lambda q: ok(build_feed([], 120))
    with pytest.raises(ArxivEmptyPageError, match="empty page at start=0"):
        make_client(retries=2).fetch_query(QUERY)
    assert len(arxiv.requests) == 3


def test_empty_first_page_recovers_on_retry(arxiv, make_client):
    arxiv.replies.extend([ok(build_feed([], 3)), ok(build_feed(real_entries()[:3], 3))])
    assert len(make_client().fetch_query(QUERY).papers) == 3


def test_empty_later_page_fails_but_keeps_the_first(arxiv, make_client):
    from digests.arxiv_api import QueryResult

    entries = real_entries()
    arxiv.replies.append(ok(build_feed(entries[:10], 30)))
    arxiv.handler = lambda q: ok(build_feed([], 30, 10))
    result = QueryResult(query=QUERY)
    with pytest.raises(ArxivEmptyPageError, match="start=10"):
        make_client(page_size=10, retries=2).fetch_query(QUERY, result=result)
    assert len(result.papers) == 10 and len(arxiv.requests) == 4


def test_genuinely_empty_result(arxiv, make_client):
    arxiv.replies.append(ok(real("arxiv_api_2026_search_zero_results.xml")))
    result = make_client().fetch_query(QUERY)
    assert result.papers == [] and result.total == 0 and result.stopped == "empty"
    assert len(arxiv.requests) == 1


def test_cache_answers_the_same_query_on_the_same_announcement_day(arxiv, make_client, tmp_path):
    db = open_db(tmp_path / "c.db")
    arxiv.handler = lambda q: ok(build_feed(real_entries()[:5], 5))
    first = make_client(cache=HttpCache(db)).fetch_query(QUERY)
    second_client = make_client(cache=HttpCache(db))
    second = second_client.fetch_query(QUERY)
    assert len(arxiv.requests) == 1 and second.papers == first.papers and second_client.stats.cache_hits == 1
    later = make_client(cache=HttpCache(db), now=lambda: datetime(2026, 11, 26, 2, 0, tzinfo=UTC))
    later.fetch_query(QUERY)  # 21:00 ET on the 25th: a new announcement went out
    assert len(arxiv.requests) == 2


def test_failed_pages_are_not_cached(arxiv, make_client, tmp_path):
    db = open_db(tmp_path / "c.db")
    arxiv.replies.append((400, real("arxiv_api_2026_error_incorrect_id_format_http400.xml"), {}))
    arxiv.handler = lambda q: ok(build_feed(real_entries()[:5], 5))
    with pytest.raises(ArxivHTTPError):
        make_client(cache=HttpCache(db)).fetch_query(QUERY)
    assert len(make_client(cache=HttpCache(db)).fetch_query(QUERY).papers) == 5


@pytest.mark.parametrize(
    "now, day",
    [
        (datetime(2026, 11, 25, 12, 0, tzinfo=UTC), "2026-11-24"),  # Wed 07:00 ET: Tue's batch
        (datetime(2026, 11, 26, 1, 30, tzinfo=UTC), "2026-11-25"),  # Wed 20:30 ET
        (datetime(2026, 11, 28, 15, 0, tzinfo=UTC), "2026-11-26"),  # Sat: Thursday's batch
        (datetime(2026, 11, 30, 1, 0, tzinfo=UTC), "2026-11-29"),  # Sun 20:00 ET
    ],
)
def test_announcement_day(now, day):
    assert announcement_day(now) == day


def test_lookup_id_found_missing_and_malformed(arxiv, make_client):
    arxiv.replies.extend(
        [
            ok(real("arxiv_api_2026_idlist_hep-th_9711200.xml")),
            ok(real("arxiv_api_2026_idlist_0808.05394_empty_result.xml")),
            (400, real("arxiv_api_2026_error_incorrect_id_format_http400.xml"), {}),
        ]
    )
    client = make_client()
    paper = client.lookup_id("hep-th/9711200")
    assert (paper.arxiv_id, paper.version) == ("hep-th/9711200", 3)
    assert arxiv.requests[0]["params"]["id_list"] == ["hep-th/9711200"]
    assert client.lookup_id("0808.05394") is None
    assert client.lookup_id("abc") is None


def test_errors_pickle_round_trip():
    import pickle

    err = ArxivHTTPError("arXiv rejected the query 'x'", url="http://h/q", attempt=1, status=400, query="x")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ArxivHTTPError and back.status == 400 and str(back) == str(err)


def test_mock_transport_handler_as_a_server():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["id_list"] == "1706.03762"
        return httpx.Response(200, content=real("arxiv_api_2026_idlist_1706.03762_v7_multiversion.xml"))

    client = ArxivClient(
        "https://export.arxiv.org/api/query",
        user_agent="t",
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
    )
    assert client.lookup_id("1706.03762").version == 7


def test_rss_announcements(arxiv, make_client):
    arxiv.replies.append(ok(real("arxiv_rss_2026-08-13_cs.CL_new_cross_replace_replace-cross.xml")))
    client = make_client(rss_url=arxiv.url.replace("/api/query", "/rss/"))
    items = client.announcements(["cs.CL", "cs.AI"])
    assert arxiv.requests[0]["path"] == "/rss/cs.CL+cs.AI"
    assert len(items) == 139 and {i.announce_type for i in items} == {"new", "cross", "replace", "replace-cross"}


def test_base_url_query_string_is_kept(arxiv, make_client):
    arxiv.replies.append(ok(real("arxiv_api_2026_idlist_1207.7214.xml")))
    make_client(url=arxiv.url + "?token=abc").lookup_id("1207.7214")
    assert arxiv.requests[0]["params"]["token"] == ["abc"] and arxiv.requests[0]["params"]["id_list"] == ["1207.7214"]


@pytest.mark.live
def test_live_lookup_and_window_query():
    """Opt-in (`pytest -m live`): the real export.arxiv.org, two requests, 3 s apart."""
    client = ArxivClient.from_settings(load_settings({}))
    try:
        paper = client.lookup_id("1706.03762")
        assert paper is not None and paper.title == "Attention Is All You Need" and paper.version >= 7
        start = datetime(2024, 1, 2, tzinfo=UTC)
        page = client.search_page(build_window_query(["cs.CL"], start, start.replace(hour=6)), max_results=5)
        assert page.total and page.papers and all("cs.CL" in p.categories for p in page.papers)
    finally:
        client.close()
