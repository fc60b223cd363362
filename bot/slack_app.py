"""Slack front end: bolt's AsyncApp answering `/paper` and `/digest`, in Socket Mode or over HTTP.

The adapter only translates (bolt's `to_bolt_request` -> dispatch -> response shape): a slash-command payload
becomes an `Invocation`, `bot.commands.run_text` does the work on a core lane (never on the event loop), and
`render_slack_reply` turns the reply into blocks sent back through the response URL (ephemeral unless the
neutral reply is meant for the whole channel; chat.postEphemeral when there is no usable response URL).

Security in HTTP mode: bolt's request verification (slack_sdk's SignatureVerifier: HMAC-SHA256 over
`v0:<timestamp>:<body>`, timestamps older than five minutes refused) plus our `ReplayGuard`, which refuses a
(timestamp, signature) pair seen in the last five minutes. Socket Mode needs neither: the websocket is
opened with the app-level token. Tokens never appear in messages or logs (slack_sdk redacts the
Authorization header in its debug log).

Slack gives an app 3 seconds to acknowledge a slash command
(https://docs.slack.dev/interactivity/implementing-slash-commands#responding_to_commands), so every listener
calls `ack()` before touching the catalog or arXiv.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_poster import PERMANENT_ERRORS, SLACK_FAILURES
from digests.errors import ConfigError, DigestBotError

if TYPE_CHECKING:
    from digests.service import Core
    from digests.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENTS_PATH = "/slack/events"
SIGNATURE_MAX_AGE_SECONDS = 300
"""Slack: reject requests whose timestamp is more than five minutes old
(https://docs.slack.dev/authentication/verifying-requests-from-slack)."""
SLACK_MAX_BLOCKS = 50
"""Block Kit: at most 50 blocks per message (https://docs.slack.dev/reference/block-kit/blocks)."""
CATALOG_LANE = "catalog"
ARXIV_LANE = "arxiv"

MSG_MISSING_FIELDS = "Slack sent this command without {fields}, so I can't run it. Please try again."
MSG_UNKNOWN_TEAM = "This app is installed in a different Slack workspace, so it can't answer here."
MSG_UNKNOWN_COMMAND = "I only know /paper and /digest. Try `/digest help`."
MSG_INTERNAL = "Something went wrong on my side while running your command; it has been logged. Please try again."
MSG_BAD_SIGNATURE_LOG = (
    "refused a Slack request with a bad, missing or stale signature; if every command fails, check that "
    "SLACK_SIGNING_SECRET is your Slack app's Signing Secret"
)
MSG_BROKEN = (
    ":warning: Digests can't be posted in this channel right now: {reason}. "
    "Once that is fixed, the next scheduled digest will go out."
)


# --------------------------------------------------------------------------- lanes


def lane(core: "Core", name: str) -> Any:
    """Return the process-wide lane `name` (`catalog` or `arxiv`): a single-thread executor with its own Core.

    Both are the process-wide lanes of bot.deliver, shared with Discord and the scheduler: the catalog lane
    keeps SQLite writes serialised; the arXiv lane (also the scheduled fetch's) keeps one arXiv request at a
    time, and a slow arXiv lookup never holds up catalog answers.
    """
    from bot.deliver import arxiv_lane, catalog_lane

    return catalog_lane(core) if name == CATALOG_LANE else arxiv_lane(core)


async def on_lane(core: "Core", name: str, func: Callable[..., T], *args: Any) -> T:
    """Run `func(core, *args)` on lane `name` and await the result; the event loop stays free."""
    result: T = await lane(core, name).run(func, *args)
    return result


def close_lanes(core: "Core") -> None:
    """Stop both lanes after the work in hand (the runner does this on shutdown)."""
    for name in (CATALOG_LANE, ARXIV_LANE):
        lane(core, name).close()


# --------------------------------------------------------------------------- translation in


def channel_key(team_id: str, channel_id: str) -> str:
    """Return the neutral channel key for a Slack channel."""
    return f"slack:{team_id}:{channel_id}"


_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>\s]+)(?:\|[^>]*)?>")


def command_text(body: dict[str, Any]) -> str:
    """Return the user's slash-command text as they typed it.

    Slack always sends `&`, `<` and `>` as HTML entities, and wraps pasted links as `<url>` or `<url|label>`
    when the command escapes links (a workspace admin can switch that on), so both are undone here.
    """
    raw = str(body.get("text") or "")
    return html.unescape(_SLACK_LINK.sub(lambda m: m.group(1), raw))


def payload_problem(body: dict[str, Any], installed_team: str | None, installed_enterprise: str | None) -> str | None:
    """Return a user-facing reason this slash-command payload can't be run, or None if it can."""
    missing = [f for f in ("team_id", "channel_id", "user_id") if not body.get(f)]
    if missing:
        return MSG_MISSING_FIELDS.format(fields=" and ".join(f"`{m}`" for m in missing))
    if command_name(body) is None:
        return MSG_UNKNOWN_COMMAND
    same_team = installed_team is None or body["team_id"] == installed_team
    same_org = bool(installed_enterprise) and body.get("enterprise_id") == installed_enterprise
    if not (same_team or same_org):
        return MSG_UNKNOWN_TEAM
    return None


def command_name(body: dict[str, Any]) -> str | None:
    """Return `paper` or `digest` for a payload's `/command`, or None for anything else."""
    from bot.commands import COMMANDS

    name = str(body.get("command") or "").strip().lstrip("/").lower()
    return name if name in {c.name for c in COMMANDS} else None


def lane_for(core: "Core", command: str, text: str) -> str:
    """Return the lane a command needs: `arxiv` only for `/paper <arXiv id>` that isn't in the catalog yet."""
    from digests.catalog import get_by_arxiv_id, parse_arxiv_ref

    ref = parse_arxiv_ref(text) if command == "paper" else None
    if ref is None:
        return CATALOG_LANE
    return CATALOG_LANE if get_by_arxiv_id(core, ref[0]) is not None else ARXIV_LANE


# --------------------------------------------------------------------------- the command itself


def run_command(core: "Core", command: str, key: str, user: str, text: str) -> dict[str, Any]:
    """Run one slash command on a lane and return the Slack message ({"text", "blocks"}) to answer with."""
    from bot.commands import Invocation, run_text
    from bot.render_slack import render_slack_reply
    from digests.channels import get_channel

    inv = Invocation(platform="slack", channel=key, user=user, can_manage=None, now=core.clock())
    message = dict(render_slack_reply(run_text(core, inv, command, text)))
    channel = get_channel(core, key)
    if channel is not None and channel.broken_reason:
        message = with_notice(message, MSG_BROKEN.format(reason=escape_mrkdwn(broken_text(channel.broken_reason))))
    return message


def broken_text(reason: str) -> str:
    """Return a broken reason in words with its fix.

    The ledger stores a sentence with the fix (`the channel is archived (is_archived); unarchive the channel or
    unsubscribe it`); an older row may hold only Slack's error code (`not_in_channel`), which gets both added.
    """
    from bot.deliver import FIX_HINTS

    code = reason.strip()
    if code in PERMANENT_ERRORS:
        return f"{PERMANENT_ERRORS[code]} ({code}); {FIX_HINTS.get(code, 'give the app back its access')}"
    return reason


def with_notice(message: dict[str, Any], notice: str) -> dict[str, Any]:
    """Return `message` with a leading notice block (kept within Slack's 50-block limit)."""
    block = {"type": "context", "elements": [{"type": "mrkdwn", "text": notice[:3000]}]}
    blocks = [block, *list(message.get("blocks") or [])][:SLACK_MAX_BLOCKS]
    return {**message, "text": f"{notice}\n{message.get('text', '')}", "blocks": blocks}


def escape_mrkdwn(text: str) -> str:
    """Escape &, < and > as Slack asks, so text can't ping (`<!channel>`) or forge links."""
    return html.escape(text, quote=False)


def error_message(text: str) -> dict[str, Any]:
    """Return a one-line ephemeral message for an error."""
    text = escape_mrkdwn(text)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]}


async def answer(respond: Any, client: AsyncWebClient, body: dict[str, Any], message: dict[str, Any]) -> None:
    """Send `message` through the response URL (ephemeral unless the reply says `in_channel`), else chat.postEphemeral.

    The neutral layer decides visibility: lookups and errors are ephemeral; a subscription change is
    announced in the channel so everyone there sees who changed it.
    """
    if respond is not None and body.get("response_url"):
        visibility = "in_channel" if message.get("response_type") == "in_channel" else "ephemeral"
        try:
            result = await respond(
                text=message["text"], blocks=message.get("blocks"), response_type=visibility, replace_original=False,
                unfurl_links=False, unfurl_media=False,
            )
            if result.status_code == 200:
                return
            log.warning("response URL refused the reply (HTTP %s) for %s", result.status_code, body.get("command"))
        except SLACK_FAILURES as exc:  # network trouble: fall through to the Web API
            log.warning("response URL failed for %s: %s", body.get("command"), type(exc).__name__)
    try:
        await client.chat_postEphemeral(
            channel=body["channel_id"], user=body["user_id"], text=message["text"], blocks=message.get("blocks")
        )
    except SLACK_FAILURES as exc:
        code = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        log.error("could not answer %s in %s: %s", body.get("command"), body.get("channel_id"), code)


def _record_failure(core: "Core", key: str, user: str, command: str) -> None:
    from digests.store import utcnow_iso

    core.db.table("command_log").insert(
        {"channel": key, "user_id": user, "command": f"/{command} (failed)", "ok": 0, "at": utcnow_iso(core.clock())}
    )


async def handle_slash_command(
    core: "Core", body: dict[str, Any], context: Any, ack: Callable[..., Awaitable[Any]], respond: Any,
    client: AsyncWebClient,
) -> None:
    """Ack at once, run the command on its lane, answer ephemerally; never raises to bolt."""
    result = context.authorize_result
    problem = payload_problem(
        body, getattr(result, "team_id", None), getattr(result, "enterprise_id", None)
    )
    if problem is not None:
        await ack(response_type="ephemeral", text=problem)
        return
    await ack()
    command, user, text = command_name(body) or "", body["user_id"], command_text(body)
    key = channel_key(body["team_id"], body["channel_id"])
    try:
        name = await on_lane(core, CATALOG_LANE, lane_for, command, text)
        message = await on_lane(core, name, run_command, command, key, user, text)
    except DigestBotError as exc:
        message = error_message(str(exc))
    except Exception:
        # Outermost per-interaction boundary: log with context, record it, tell the user.
        log.exception("/%s failed in %s for %s", command, key, user)
        await on_lane(core, CATALOG_LANE, _record_failure, key, user, command)
        message = error_message(MSG_INTERNAL)
    await answer(respond, client, body, message)


# --------------------------------------------------------------------------- app wiring


class ReplayGuard:
    """Remember (timestamp, signature) pairs for five minutes and refuse any pair seen twice."""

    def __init__(self, window: float = SIGNATURE_MAX_AGE_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def is_replay(self, timestamp: str, signature: str) -> bool:
        """Return True if this pair was already accepted; otherwise remember it."""
        now = self.clock()
        while self._seen and next(iter(self._seen.values())) < now - self.window:
            self._seen.popitem(last=False)
        if (timestamp, signature) in self._seen:
            return True
        self._seen[(timestamp, signature)] = now
        return False


def _replay_middleware(guard: ReplayGuard) -> Callable[..., Awaitable[BoltResponse]]:
    async def refuse_replays(req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[Any]]) -> Any:
        if req.mode == "http":
            timestamp = (req.headers.get("x-slack-request-timestamp") or [""])[0]
            signature = (req.headers.get("x-slack-signature") or [""])[0]
            if guard.is_replay(timestamp, signature):
                log.warning("refused a replayed Slack request (timestamp %s)", timestamp)
                return BoltResponse(status=401, body=json.dumps({"error": "invalid request"}))
        return await next()

    return refuse_replays


async def _explain_commandless(body: dict[str, Any], next: Callable[[], Awaitable[Any]]) -> Any:
    """Answer a slash-command-shaped payload that lacks `command` instead of bolt's bare 404."""
    if "command" not in body and ("response_url" in body or "user_id" in body or "text" in body):
        reply = {"response_type": "ephemeral", "text": MSG_MISSING_FIELDS.format(fields="`command`")}
        return BoltResponse(status=200, body=json.dumps(reply), headers={"content-type": "application/json"})
    return await next()


class _BoltLogFilter(logging.Filter):
    """Keep secrets and noise out of bolt's log records.

    Bolt logs a refused signature with the whole request body, which carries Slack's verification `token`
    field; the record is reworded to name the variable to check instead. Bolt also warns "`token` will be
    unused" because it reads SLACK_BOT_TOKEN from the environment by itself even when handed a client, and the
    client (built from Settings) is exactly what we mean it to use.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "`token` will be unused" in message:
            return False
        if message.startswith("Invalid request signature detected"):
            record.msg, record.args = MSG_BAD_SIGNATURE_LOG, ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def make_web_client(token: str | None, settings: "Settings") -> AsyncWebClient:
    """Return an AsyncWebClient on `settings.slack_api_url` (loopback in tests, slack.com otherwise)."""
    return AsyncWebClient(token=token, base_url=settings.slack_api_url)


def build_slack_app(core: "Core", settings: "Settings | None" = None, client: AsyncWebClient | None = None) -> AsyncApp:
    """Return the bolt AsyncApp with the `/paper` and `/digest` listeners.

    Signature checking is bolt's own (slack_sdk's SignatureVerifier, five-minute window) plus a replay guard;
    both only apply to HTTP requests. Bolt checks the bot token with auth.test on the first request and caches
    the answer, so whichever Web API `settings.slack_api_url` points at must answer auth.test.
    """
    settings = settings or core.settings
    check_token_shapes(settings)
    if not settings.slack_app_token and not settings.slack_signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set: HTTP mode needs the Signing Secret from your Slack app's Basic "
            "Information page (or set SLACK_APP_TOKEN to use Socket Mode, which needs no public URL)",
            variable="SLACK_SIGNING_SECRET",
        )
    client = client or make_web_client(settings.slack_bot_token, settings)
    # Bolt skips signature checks for Socket Mode requests itself, so verification stays on in both modes.
    bolt_log = logging.getLogger("bot.slack_app.bolt")
    if not any(isinstance(f, _BoltLogFilter) for f in bolt_log.filters):
        bolt_log.addFilter(_BoltLogFilter())
    app = AsyncApp(
        client=client,  # carries the token from Settings
        signing_secret=settings.slack_signing_secret or "",
        logger=bolt_log,
    )
    app.use(_replay_middleware(ReplayGuard()))
    app.use(_explain_commandless)
    async def on_command(body: dict[str, Any], context: Any, ack: Any, respond: Any, client: AsyncWebClient) -> None:
        await handle_slash_command(core, body, context, ack, respond, client)

    app.command(re.compile(r"^/.+"))(on_command)
    return app


# --------------------------------------------------------------------------- running


def check_token_shapes(settings: "Settings") -> None:
    """Raise ConfigError naming the variable when a Slack token is missing or clearly the wrong kind."""
    if not settings.slack_bot_token:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-...) from your Slack app's "
            "OAuth & Permissions page into that environment variable",
            variable="SLACK_BOT_TOKEN",
        )
    if not settings.slack_bot_token.startswith("xoxb-"):
        raise ConfigError(
            "SLACK_BOT_TOKEN does not look like a bot token (it should start with xoxb-); use the Bot User "
            "OAuth Token from OAuth & Permissions",
            variable="SLACK_BOT_TOKEN",
        )
    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        raise ConfigError(
            "SLACK_APP_TOKEN does not look like an app-level token (it should start with xapp-); create one "
            "with the connections:write scope under Basic Information > App-Level Tokens",
            variable="SLACK_APP_TOKEN",
        )


async def verify_bot_token(client: AsyncWebClient) -> dict[str, Any]:
    """Call auth.test and return its answer; raise ConfigError naming SLACK_BOT_TOKEN if Slack refuses it."""
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        code = exc.response.get("error", "error")
        raise ConfigError(
            f"Slack refused SLACK_BOT_TOKEN ({code}): check the variable holds your app's current Bot User "
            "OAuth Token, and reinstall the app if it was revoked",
            variable="SLACK_BOT_TOKEN",
            code=code,
        ) from None
    except Exception as exc:  # network: the token may be fine, Slack is unreachable
        raise ConfigError(
            f"Could not reach the Slack Web API to check SLACK_BOT_TOKEN ({type(exc).__name__}); check your "
            "network or DIGESTBOT_SLACK_API_URL",
            variable="SLACK_BOT_TOKEN",
        ) from None
    return dict(response.data) if isinstance(response.data, dict) else {}


async def check_setup(settings: "Settings") -> dict[str, Any]:
    """Check the Slack variables against Slack without serving; return what they unlock, or raise ConfigError."""
    check_token_shapes(settings)
    if not settings.slack_app_token and not settings.slack_signing_secret:
        raise ConfigError(
            "Set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode) as well as SLACK_BOT_TOKEN",
            variable="SLACK_APP_TOKEN",
        )
    client = make_web_client(settings.slack_bot_token, settings)
    identity = await verify_bot_token(client)
    if settings.slack_app_token:
        await _verify_app_token(client, settings.slack_app_token)
    return {
        "team": identity.get("team"), "team_id": identity.get("team_id"), "user": identity.get("user"),
        "mode": "socket" if settings.slack_app_token else "http", "port": settings.slack_port,
    }


async def _verify_app_token(client: AsyncWebClient, app_token: str) -> None:
    try:
        # slack_sdk's connect loop retries a refused app token forever, so check it once up front.
        await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        code = exc.response.get("error", "error")
        raise ConfigError(
            f"Slack refused SLACK_APP_TOKEN ({code}): create an app-level token with the connections:write "
            "scope under Basic Information > App-Level Tokens, and enable Socket Mode",
            variable="SLACK_APP_TOKEN",
            code=code,
        ) from None


async def run_slack(core: "Core", on_ready: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Run the Slack app until cancelled: Socket Mode if SLACK_APP_TOKEN is set, else HTTP on `slack_port`.

    Raises ConfigError (one line, naming the variable) for a missing or refused token; tokens never appear in
    messages or logs. `on_ready` gets {"mode", "team_id", "port"} once the app is listening.
    """
    settings = core.settings
    check_token_shapes(settings)
    client = make_web_client(settings.slack_bot_token, settings)
    identity = await verify_bot_token(client)
    app = build_slack_app(core, settings, client=client)
    info = {"team_id": identity.get("team_id"), "team": identity.get("team")}
    if settings.slack_app_token:
        await _run_socket_mode(app, client, settings.slack_app_token, info, on_ready)
    else:
        await _run_http(app, settings.slack_port, info, on_ready)


async def _run_socket_mode(
    app: AsyncApp, client: AsyncWebClient, app_token: str, info: dict[str, Any], on_ready: Callable[..., None] | None
) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    await _verify_app_token(client, app_token)  # before the handler exists: it opens an HTTP session at once
    handler = AsyncSocketModeHandler(app, app_token, web_client=client)
    try:
        await handler.connect_async()
        log.info("Slack app connected in Socket Mode to team %s", info.get("team_id"))
        if on_ready:
            on_ready({**info, "mode": "socket", "port": None})
        await asyncio.Event().wait()
    finally:
        await handler.close_async()


def make_web_app(app: AsyncApp, port: int = 0) -> Any:
    """Return the aiohttp application serving `app` on EVENTS_PATH, refusing bodies bolt can't parse.

    Bolt parses the body before it checks the signature, so an unsigned request with a malformed `payload=`
    field would otherwise get a 500 and a traceback in the log; it gets a 400 and one log line instead.
    """
    from aiohttp import web

    @web.middleware
    async def refuse_unparseable(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        try:
            return await handler(request)
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.warning("refused a Slack request whose body can't be parsed (%s)", type(exc).__name__)
            return web.json_response({"error": "invalid request"}, status=400)

    web_app = app.web_app(path=EVENTS_PATH, port=port)
    web_app.middlewares.append(refuse_unparseable)
    return web_app


async def _run_http(app: AsyncApp, port: int, info: dict[str, Any], on_ready: Callable[..., None] | None) -> None:
    from aiohttp import web

    runner = web.AppRunner(make_web_app(app, port), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"Could not listen on port {port} for Slack ({exc.strerror}); set another [slack] port in the config file",
            variable="slack.port",
        ) from None
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    log.info("Slack app listening over HTTP on port %s%s", bound, EVENTS_PATH)
    if on_ready:
        on_ready({**info, "mode": "http", "port": bound})
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
