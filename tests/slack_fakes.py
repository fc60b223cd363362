"""Loopback fakes for Slack: a recording Web API server, request signing, and a running bolt app.

`FakeSlackAPI` is a real aiohttp server on 127.0.0.1 port 0. Point `AsyncWebClient(base_url=fake.api_url)` at it
(or set DIGESTBOT_SLACK_API_URL) and every Web API call and response-URL post lands in `fake.calls`. Errors are
scripted per method with `fake.script(method, ...)`, in the shapes Slack really sends (HTTP 200 + `ok: false`, or
HTTP 429 + `Retry-After`; see tests/fixtures/realdata/SOURCES.md section 5).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

REALDATA = Path(__file__).parent / "fixtures" / "realdata"
TEST_SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
TEST_BOT_TOKEN = "xoxb-test-0000-secret-bot-token"
TEST_APP_TOKEN = "xapp-1-test-0000-secret-app-token"
TEAM_ID = "T0001"
BOT_USER_ID = "U0BOT0001"


def realdata(name: str) -> str:
    """Return a file from tests/fixtures/realdata as text."""
    return (REALDATA / name).read_text(encoding="utf-8")


def sign_headers(body: str | bytes, secret: str = TEST_SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Return the headers Slack sends with `body`, signed with slack_sdk's own signer."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }


def weather_fields() -> dict[str, str]:
    """Return the fields of Slack's documented `/weather 94070` payload (DOCS fixture)."""
    body = realdata("slack_docs_slash_command_weather_payload_body.txt")
    return dict(urllib.parse.parse_qsl(body, keep_blank_values=True))


def slash_body(command: str, text: str, response_url: str | None, drop: tuple[str, ...] = (), **over: str) -> str:
    """Return a form body: the documented payload with our command, text and response URL.

    The field set is the one in slack_sdk_slash_command_payload_fieldset_anonymized.json; `drop` removes fields
    to build malformed payloads, `over` overrides any field.
    """
    fieldset = json.loads(realdata("slack_sdk_slash_command_payload_fieldset_anonymized.json"))
    fields = {k: "" for k in fieldset if k != "is_enterprise_install"}
    fields.update(weather_fields())
    fields.update(command=command, text=text, team_id=TEAM_ID, response_url=response_url or "")
    fields.update(over)
    for name in drop:
        fields.pop(name, None)
    if response_url is None:
        fields.pop("response_url", None)
    return urllib.parse.urlencode(fields)


@dataclass
class Call:
    """One request the fake received: a Web API method or a response-URL post."""

    method: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 200
    at: float = field(default_factory=time.perf_counter)
    """When the fake received it (perf_counter), for benches."""
    name: str = ""
    """For response-URL posts: the name given to `response_url(name)`."""


@dataclass
class Scripted:
    """A canned answer for the next call(s) of one method."""

    error: str | None = None
    status: int = 200
    retry_after: int | None = None
    times: int = 1
    after: int = 0
    """Let this many calls through normally before failing."""


@dataclass
class FakeSlackAPI:
    """A loopback Slack Web API that records every call and answers like Slack does."""

    team_id: str = TEAM_ID
    bot_token: str = TEST_BOT_TOKEN
    app_token: str = TEST_APP_TOKEN
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    """Envelope acks the app sent back over the Socket Mode websocket."""
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    threads: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    """Thread replies by (channel, parent ts), oldest first."""
    scripts: dict[str, list[Scripted]] = field(default_factory=dict)
    _ts: Any = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> "FakeSlackAPI":
        """Serve on 127.0.0.1 on a free port."""
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{name}", self._response_url)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Shut the server down."""
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """Return the base URL to hand to AsyncWebClient / DIGESTBOT_SLACK_API_URL."""
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "r1") -> str:
        """Return a response URL served by this fake."""
        return f"http://127.0.0.1:{self.port}/response/{name}"

    def script(self, method: str, error: str | None = None, status: int = 200, retry_after: int | None = None,
               times: int = 1, after: int = 0) -> None:
        """Make `times` calls of `method` fail with `error` (or HTTP `status`, e.g. 429), after `after` good ones."""
        self.scripts.setdefault(method, []).append(Scripted(error, status, retry_after, times, after))

    def of(self, method: str) -> list[Call]:
        """Return the recorded calls of one method (`response` for response-URL posts)."""
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, predicate: Callable[["FakeSlackAPI"], bool], timeout: float = 20.0) -> None:
        """Wait until `predicate(self)` holds; an event wait, never a sleep loop."""
        assert self._changed is not None

        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

        await asyncio.wait_for(_wait(), timeout)

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _read(self, request: web.Request) -> dict[str, Any]:
        data: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if raw:
            if request.content_type == "application/json":
                data.update(json.loads(raw))
            else:
                data.update(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
        return data

    def _next_script(self, method: str) -> Scripted | None:
        queue = self.scripts.get(method) or []
        if not queue:
            return None
        head = queue[0]
        if head.after > 0:
            head.after -= 1
            return None
        head.times -= 1
        if head.times <= 0:
            queue.pop(0)
        return head

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await self._read(request)
        headers = dict(request.headers)
        scripted = self._next_script(method)
        token = self.app_token if method == "apps.connections.open" else self.bot_token
        if scripted is None and headers.get("Authorization") != f"Bearer {token}":
            scripted = Scripted(error="invalid_auth")
        status = scripted.status if scripted else 200
        await self._record(Call(method, body, headers, status))
        if scripted is not None:
            extra = {"Retry-After": str(scripted.retry_after)} if scripted.retry_after is not None else {}
            error = scripted.error or ("ratelimited" if status == 429 else "internal_error")
            return web.json_response({"ok": False, "error": error}, status=status, headers=extra)
        return web.json_response(self._answer(method, body))

    def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://example.slack.com/", "team": "Example", "user": "digestbot",
                    "team_id": self.team_id, "user_id": BOT_USER_ID, "bot_id": "B0BOT0001"}
        if method == "chat.postMessage":
            return self._post(body)
        if method == "conversations.history":
            return self._history(body)
        if method == "conversations.replies":
            return self._replies(body)
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}
        return {"ok": True}

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = body["channel"]
        ts = f"{1764072000 + next(self._ts)}.000100"
        message: dict[str, Any] = {"type": "message", "text": body.get("text", ""), "ts": ts, "bot_id": "B0BOT0001"}
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        metadata = body.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if metadata:
            message["metadata"] = metadata
        if body.get("thread_ts"):
            self.threads.setdefault((channel, body["thread_ts"]), []).append(message)
        else:
            self.history.setdefault(channel, []).insert(0, message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _history(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = self.history.get(body.get("channel", ""), [])
        include_metadata = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
        shown = [m if include_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in messages]
        return {"ok": True, "messages": shown, "has_more": False}

    def _replies(self, body: dict[str, Any]) -> dict[str, Any]:
        """conversations.replies: the parent message first, then its replies (Slack's order)."""
        channel, ts = body.get("channel", ""), body.get("ts", "")
        parent = [m for m in self.history.get(channel, []) if m["ts"] == ts]
        if not parent:
            return {"ok": False, "error": "thread_not_found"}
        include_metadata = str(body.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = parent + self.threads.get((channel, ts), [])
        shown = [m if include_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in messages]
        return {"ok": True, "messages": shown, "has_more": False}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: say hello, then record every envelope ack the app sends back."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}})
        async for msg in ws:
            if msg.type.name == "TEXT":
                self.socket_acks.append(json.loads(msg.data))
                assert self._changed is not None
                async with self._changed:
                    self._changed.notify_all()
        return ws

    async def push_slash_command(self, envelope_id: str, form_body: str) -> None:
        """Send a slash command to the connected app the way Socket Mode does (an envelope)."""
        await self.wait_for(lambda f: bool(f._sockets))
        payload = dict(urllib.parse.parse_qsl(form_body, keep_blank_values=True))
        envelope = {"envelope_id": envelope_id, "type": "slash_commands", "payload": payload,
                    "accepts_response_payload": True}
        await self._sockets[-1].send_json(envelope)

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        await self._record(Call("response", body, dict(request.headers), name=request.match_info["name"]))
        return web.Response(text="ok")


@dataclass
class RunningApp:
    """A bolt AsyncApp served over real HTTP on a loopback port."""

    runner: web.AppRunner
    port: int

    @property
    def url(self) -> str:
        """Return the request URL to configure in Slack (`/slack/events`)."""
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def stop(self) -> None:
        """Stop serving."""
        await self.runner.cleanup()


async def serve_app(web_app: web.Application) -> RunningApp:
    """Serve an aiohttp application (from `AsyncApp.web_app()`) on 127.0.0.1, port 0."""
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return RunningApp(runner, site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]


class SlowArxiv:
    """A loopback arXiv API (thread, port 0) that holds every request until `release()`; counts them."""

    def __init__(self, body: bytes | None = None) -> None:
        self.body = body or (REALDATA / "arxiv_api_2026_idlist_1706.03762_v7_multiversion.xml").read_bytes()
        self.released = threading.Event()
        self.arrived = threading.Event()
        self.requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                fake.requests += 1
                fake.arrived.set()
                fake.released.wait(60)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
                    self.send_header("Content-Length", str(len(fake.body)))
                    self.end_headers()
                    self.wfile.write(fake.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (its timeout), which is what some tests want

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Return the API URL to put in DIGESTBOT_ARXIV_API_URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/query"

    def release(self) -> None:
        """Let every held and future request through."""
        self.released.set()

    def close(self) -> None:
        """Release waiters and stop the server."""
        self.release()
        self.server.shutdown()
        self.server.server_close()
