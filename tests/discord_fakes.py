"""A loopback fake of the Discord REST API (aiohttp on 127.0.0.1, port 0) for the Discord tests and bench.

It answers just the routes digestbot uses, records every request, and can be scripted to answer a channel's
message posts with the real 429/403/404 responses from tests/fixtures/realdata:

- GET  /users/@me, GET /oauth2/applications/@me                 (discord.py's login)
- PUT  /applications/{app}/commands, .../guilds/{guild}/commands (command sync; echoes the commands with ids)
- POST /interactions/{id}/{token}/callback                       (defer, send_message, autocomplete)
- POST /webhooks/{app}/{token}, DELETE .../messages/@original     (followups)
- POST /channels/{id}/messages                                    (digests; emulates `nonce` + `enforce_nonce`)
- GET  /channels/{id}/messages?limit=N                            (newest first, as Discord returns them)

It runs on the test's own event loop, so an awaited request has been recorded when the await returns.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiohttp import web

REALDATA = Path(__file__).parent / "fixtures" / "realdata"
APP_ID = "1380486651436073092"
"""The application id of the real 2025-06 interaction fixture; the fake bot user has the same id."""
API_PREFIX = "/api/v10"


@dataclass
class FakeResponse:
    """One scripted HTTP answer."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def to_web(self) -> web.Response:
        """Return the aiohttp response for this answer."""
        if self.body is None:
            return web.Response(status=self.status, headers=self.headers)
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        headers = {"Content-Type": "application/json", **self.headers}
        # Exactly `application/json` (no charset): discord.py decodes JSON only on that exact content type.
        return web.Response(
            status=self.status, body=text.encode("utf-8"), headers=headers
        )


def load_http_fixture(name: str) -> FakeResponse:
    """Parse a realdata `.http` file (status line, headers, blank line, JSON body) into a FakeResponse."""
    head, _, body = (REALDATA / name).read_text(encoding="utf-8").partition("\n\n")
    lines = head.splitlines()
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if line.strip())
    headers.pop("Content-Type", None)
    return FakeResponse(status, body.strip(), headers)


def load_json_fixture(name: str, status: int) -> FakeResponse:
    """Return a realdata JSON error body (verbatim bytes) or a {status, headers, body} record as a FakeResponse."""
    text = (REALDATA / name).read_text(encoding="utf-8").strip()
    data = json.loads(text)
    if isinstance(data, dict) and "body" in data and "status" in data:
        return FakeResponse(
            int(data["status"]), data["body"], dict(data.get("headers", {}))
        )
    return FakeResponse(status, text)


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class FakeDiscordAPI:
    """The loopback fake; use `async with FakeDiscordAPI() as api:` and point the REST base at `api.base_url`."""

    def __init__(self, app_id: str = APP_ID) -> None:
        self.app_id = app_id
        self.requests: list[Recorded] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}
        """Messages created per channel id, oldest first."""
        self.scripts: dict[str, list[FakeResponse | None]] = {}
        """Per channel id: answers consumed in order by the next message posts (then normal behaviour)."""
        self.broken: dict[str, FakeResponse] = {}
        """Per channel id: the answer to every message post and history read (a deleted channel, a kicked bot)."""
        self.ids = itertools.count(1_400_000_000_000_000_000)
        self.static: dict[str, FakeResponse] = {}
        """Any other path (after the API prefix) -> a fixed answer, e.g. an arXiv API reply for /paper lookups."""
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> Self:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}{API_PREFIX}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def script(self, channel_id: str | int, *responses: FakeResponse | None) -> None:
        """Answer the next message posts to `channel_id` with `responses`, in order (None: answer normally)."""
        self.scripts.setdefault(str(channel_id), []).extend(responses)

    async def wait_for(
        self, method: str, pattern: str, count: int = 1
    ) -> list[Recorded]:
        """Wait (on an event, not a timer) until `count` matching requests have arrived; return them."""
        assert self._changed is not None
        async with self._changed:
            await self._changed.wait_for(
                lambda: len(self.calls(method, pattern)) >= count
            )
        return self.calls(method, pattern)

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        """Return the recorded requests whose method matches and whose path matches the regex `pattern`."""
        return [
            r
            for r in self.requests
            if r.method == method and re.fullmatch(pattern, r.path)
        ]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = request.path.removeprefix(API_PREFIX)
        self.requests.append(
            Recorded(
                request.method, path, dict(request.query), dict(request.headers), body
            )
        )
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and request.method == method:
                return handler(body, request, *match.groups()).to_web()
        if path in self.static:
            return self.static[path].to_web()
        return FakeResponse(404, {"message": "404: Not Found", "code": 0}).to_web()

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", r"/users/@me", self._me),
            ("GET", r"/oauth2/applications/@me", self._application),
            ("PUT", r"/applications/(\d+)/commands", self._sync),
            ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._sync),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("POST", r"/webhooks/(\d+)/([^/]+)", self._followup),
            ("DELETE", r"/webhooks/(\d+)/([^/]+)/messages/@original", self._no_content),
            ("POST", r"/channels/(\d+)/messages", self._create_message),
            ("GET", r"/channels/(\d+)/messages", self._history),
        ]

    def _user(self) -> dict[str, Any]:
        return {
            "id": self.app_id,
            "username": "digestbot",
            "discriminator": "0",
            "avatar": None,
            "bot": True,
        }

    def _me(self, body: Any, request: web.Request) -> FakeResponse:
        if request.headers.get("Authorization") != "Bot good-token":
            return load_json_fixture("discord_docs_error_json_example_50014.json", 401)
        return FakeResponse(200, self._user())

    def _application(self, body: Any, request: web.Request) -> FakeResponse:
        app = {
            "id": self.app_id,
            "name": "digestbot",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": {**self._user(), "id": "410212090289192960", "bot": False},
            "verify_key": "b853dd9f496723daf64bf2f5a886086f790df66e61d7b6f7f98a50c9e5ede8f3",
            "flags": 0,
        }
        return FakeResponse(200, app)

    def _sync(self, body: Any, request: web.Request, *ids: str) -> FakeResponse:
        echoed = [
            {
                **cmd,
                "id": str(next(self.ids)),
                "application_id": self.app_id,
                "version": "1",
            }
            for cmd in body
        ]
        return FakeResponse(200, echoed)

    def _callback(
        self, body: Any, request: web.Request, interaction_id: str, token: str
    ) -> FakeResponse:
        flags = (body.get("data") or {}).get("flags", 0)
        interaction = {
            "id": interaction_id,
            "type": 2,
            "response_message_loading": body["type"] == 5,
            "response_message_ephemeral": bool(flags & 64),
        }
        return FakeResponse(
            200, {"interaction": interaction, "resource": {"type": body["type"]}}
        )

    def _followup(
        self, body: Any, request: web.Request, app_id: str, token: str
    ) -> FakeResponse:
        return FakeResponse(200, self._message("0", body))

    def _no_content(self, body: Any, request: web.Request, *args: str) -> FakeResponse:
        return FakeResponse(204)

    def _create_message(
        self, body: Any, request: web.Request, channel_id: str
    ) -> FakeResponse:
        queued = self.scripts.get(channel_id)
        if queued:
            scripted = queued.pop(0)
            if (
                scripted is not None
            ):  # None in a script means "answer this one normally"
                return scripted
        if channel_id in self.broken:
            return self.broken[channel_id]
        existing = self.messages.setdefault(channel_id, [])
        if body.get("enforce_nonce") and body.get("nonce"):
            for message in existing:
                if message.get("nonce") == body["nonce"]:
                    return FakeResponse(200, message)
        message = self._message(channel_id, body)
        existing.append(message)
        return FakeResponse(200, message)

    def _history(
        self, body: Any, request: web.Request, channel_id: str
    ) -> FakeResponse:
        if channel_id in self.broken:
            return self.broken[channel_id]
        limit = int(request.query.get("limit", "50"))
        newest_first = list(reversed(self.messages.get(channel_id, [])))[:limit]
        return FakeResponse(
            200, [{k: v for k, v in m.items() if k != "nonce"} for m in newest_first]
        )

    def _message(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(next(self.ids)),
            "channel_id": channel_id,
            "type": 0,
            "content": body.get("content") or "",
            "author": self._user(),
            "embeds": body.get("embeds") or [],
            "attachments": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": "2026-11-25T12:00:00.000000+00:00",
            "edited_timestamp": None,
            "flags": body.get("flags", 0),
            "components": [],
            "nonce": body.get("nonce"),
        }


class ThreadedFakeDiscordAPI:
    """The same fake on its own event loop in a thread, for CLI tests whose command runs `asyncio.run`."""

    def __init__(self) -> None:
        import threading

        self.api = FakeDiscordAPI()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._loop: Any = None
        self._stop: Any = None

    def _serve(self) -> None:
        import asyncio

        async def main() -> None:
            self._stop = asyncio.Event()
            async with self.api:
                self._ready.set()
                await self._stop.wait()

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(main())
        self._loop.close()

    def __enter__(self) -> FakeDiscordAPI:
        self._thread.start()
        self._ready.wait()
        return self.api

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
