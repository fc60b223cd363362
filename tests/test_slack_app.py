"""The bolt app served on a loopback port, fed signed slash commands, answering into a fake Slack Web API."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
import urllib.parse

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from bot.slack_app import (
    MSG_INTERNAL,
    MSG_UNKNOWN_COMMAND,
    MSG_UNKNOWN_TEAM,
    ReplayGuard,
    build_slack_app,
    on_lane,
    run_slack,
)
from digests.errors import ConfigError
from tests.slack_fakes import (
    TEAM_ID,
    TEST_APP_TOKEN,
    TEST_BOT_TOKEN,
    TEST_SIGNING_SECRET,
    FakeSlackAPI,
    realdata,
    serve_app,
    sign_headers,
    SlowArxiv,
    slash_body,
)

SLACK_MAX_BLOCKS = 50
SLACK_SECTION_TEXT_MAX = 3000
HOSTILE = [
    'title:"reward" AND NOT (model*) NEAR/2 ^^',
    "\"unbalanced quote 'and' another",
    "x" * 10_000,
    "Ünïcödé ℌ𝔢𝔩𝔩𝔬 \u202eevil\u202c \u0000 zero",
    "🤖🧠📄 reward 🙃",
    "<!channel> look at this",
    "@everyone @here <@U123> <https://evil.example|click>",
    "",
    "   ",
    "subscribe",
    "schedule fri 25:99 Mars/Olympus",
]


async def send(url: str, body: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """POST `body` to the app, signed unless headers are given; return (status, body text)."""
    headers = sign_headers(body) if headers is None else headers
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body.encode(), headers=headers) as response:
            return response.status, await response.text()


def responses(fake: FakeSlackAPI) -> list[dict]:
    return [c.body for c in fake.of("response")]


def assert_within_limits(message: dict) -> None:
    blocks = message.get("blocks") or []
    assert len(blocks) <= SLACK_MAX_BLOCKS
    for block in blocks:
        assert len((block.get("text") or {}).get("text", "")) <= SLACK_SECTION_TEXT_MAX
    raw = json.dumps(message)
    assert "<!channel>" not in raw and "<!everyone>" not in raw and "<!here>" not in raw
    assert "<https://evil.example|click>" not in raw
    assert "Traceback" not in raw


# ------------------------------------------------------------------ signatures


def test_documented_signing_vector_is_valid_with_slack_sdk():
    doc = json.loads(realdata("slack_docs_signing_example_slash_command_request.json"))
    ts = int(doc["headers"]["X-Slack-Request-Timestamp"])
    verifier = SignatureVerifier(doc["signing_secret"], clock=type("C", (), {"now": lambda self: ts})())
    body = realdata("slack_docs_signing_example_slash_command_body.txt")
    assert verifier.generate_signature(timestamp=str(ts), body=body) == doc["headers"]["X-Slack-Signature"]
    assert verifier.is_valid(body=body, timestamp=str(ts), signature=doc["headers"]["X-Slack-Signature"])


async def test_documented_vector_is_refused_as_stale(app_server, slack_api):
    doc = json.loads(realdata("slack_docs_signing_example_slash_command_request.json"))
    status, _ = await send(app_server.url, doc["body"], doc["headers"])
    assert status == 401 and slack_api.calls == []


@pytest.mark.parametrize("case", ["bad", "missing", "stale", "wrong_secret", "tampered"])
async def test_bad_signatures_are_refused(app_server, slack_api, case):
    body = slash_body("/paper", "reward", slack_api.response_url())
    headers = sign_headers(body)
    if case == "bad":
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    elif case == "missing":
        del headers["X-Slack-Signature"], headers["X-Slack-Request-Timestamp"]
    elif case == "stale":
        headers = sign_headers(body, timestamp=int(time.time()) - 301)
    elif case == "wrong_secret":
        headers = sign_headers(body, secret="not-the-secret")
    elif case == "tampered":
        body = body.replace("reward", "rewarx")
    status, _ = await send(app_server.url, body, headers)
    assert status == 401
    assert slack_api.of("response") == [] and slack_api.of("chat.postEphemeral") == []


async def test_replayed_request_is_refused(app_server, slack_api):
    body = slash_body("/digest", "help", slack_api.response_url())
    headers = sign_headers(body)
    first, _ = await send(app_server.url, body, headers)
    again, _ = await send(app_server.url, body, headers)
    assert (first, again) == (200, 401)
    await slack_api.wait_for(lambda f: len(f.of("response")) == 1)


def test_replay_guard_forgets_after_five_minutes():
    now = [1000.0]
    guard = ReplayGuard(clock=lambda: now[0])
    assert not guard.is_replay("1", "v0=a")
    assert guard.is_replay("1", "v0=a")
    now[0] += 301
    assert not guard.is_replay("2", "v0=b") and not guard.is_replay("1", "v0=a")


# ------------------------------------------------------------------ commands


async def test_paper_acks_empty_then_answers_ephemerally(app_server, slack_api):
    status, text = await send(app_server.url, slash_body("/paper", "reward model", slack_api.response_url()))
    assert status == 200 and text == ""
    await slack_api.wait_for(lambda f: len(f.of("response")) == 1)
    [reply] = responses(slack_api)
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert reply["text"] and MSG_INTERNAL not in reply["text"]
    assert_within_limits(reply)


async def test_ack_returns_while_the_catalog_lane_is_busy(app_server, slack_core, slack_api):
    """The HTTP response (the ack) comes back before the backend has done anything."""
    busy, release = threading.Event(), threading.Event()
    blocker = asyncio.ensure_future(on_lane(slack_core, "catalog", lambda core: (busy.set(), release.wait(30))))
    await asyncio.get_running_loop().run_in_executor(None, busy.wait, 30)
    status, text = await send(app_server.url, slash_body("/digest", "topics", slack_api.response_url()))
    assert status == 200 and text == "" and slack_api.of("response") == []
    release.set()
    await blocker
    await slack_api.wait_for(lambda f: len(f.of("response")) == 1)


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("command", ["/paper", "/digest"])
async def test_hostile_text_gets_a_clear_answer(app_server, slack_api, command, text):
    status, _ = await send(app_server.url, slash_body(command, text, slack_api.response_url()))
    assert status == 200
    await slack_api.wait_for(lambda f: len(f.of("response")) == 1)
    [reply] = responses(slack_api)
    assert reply["text"].strip() and MSG_INTERNAL not in reply["text"]
    assert_within_limits(reply)


async def test_documented_weather_payload_gets_unknown_command(app_server, slack_api):
    body = realdata("slack_docs_slash_command_weather_payload_body.txt")
    status, text = await send(app_server.url, body)
    assert status == 200
    answer = json.loads(text)
    assert answer["response_type"] == "ephemeral" and answer["text"] == MSG_UNKNOWN_COMMAND


async def test_unknown_team_is_told_so(app_server, slack_api):
    status, text = await send(app_server.url, slash_body("/paper", "x", slack_api.response_url(), team_id="T9999"))
    assert status == 200 and json.loads(text)["text"] == MSG_UNKNOWN_TEAM
    assert slack_api.of("response") == []


@pytest.mark.parametrize("field", ["user_id", "channel_id", "team_id", "command"])
async def test_missing_fields_get_an_ephemeral_error(app_server, slack_api, field):
    status, text = await send(app_server.url, slash_body("/paper", "x", slack_api.response_url(), drop=(field,)))
    assert status == 200
    answer = json.loads(text)
    assert answer["response_type"] == "ephemeral" and f"`{field}`" in answer["text"]


async def test_missing_response_url_falls_back_to_post_ephemeral(app_server, slack_api):
    status, _ = await send(app_server.url, slash_body("/digest", "help", None))
    assert status == 200
    await slack_api.wait_for(lambda f: len(f.of("chat.postEphemeral")) == 1)
    [call] = slack_api.of("chat.postEphemeral")
    assert call.body["channel"] and call.body["user"] and call.body["text"]


async def test_broken_channel_is_reported_to_the_next_user(app_server, slack_core, slack_api):
    from digests.channels import mark_broken, subscribe

    fields = urllib.parse.parse_qs(slash_body("/digest", "status", slack_api.response_url()))
    key = f"slack:{TEAM_ID}:{fields['channel_id'][0]}"
    theme = slack_core.theme_names[0]
    subscribe(slack_core, key, [theme])
    mark_broken(slack_core, key, "not_in_channel")  # the ledger stores Slack's error code
    await send(app_server.url, slash_body("/digest", "status", slack_api.response_url()))
    await slack_api.wait_for(lambda f: len(f.of("response")) == 1)
    [reply] = responses(slack_api)
    assert "not a member of this channel (not_in_channel)" in json.dumps(reply) and "/invite" in json.dumps(reply)
    assert_within_limits(reply)


# ------------------------------------------------------------------ configuration and running


def _with(core, **changes):
    return dataclasses.replace(core, settings=dataclasses.replace(core.settings, **changes))


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"slack_bot_token": None}, "SLACK_BOT_TOKEN"),
        ({"slack_bot_token": "xoxp-user-token"}, "SLACK_BOT_TOKEN"),
        ({"slack_signing_secret": None}, "SLACK_SIGNING_SECRET"),
        ({"slack_app_token": "xoxb-wrong-kind"}, "SLACK_APP_TOKEN"),
    ],
)
def test_build_names_the_missing_or_wrong_variable(slack_core, changes, variable):
    with pytest.raises(ConfigError) as info:
        build_slack_app(_with(slack_core, **changes))
    message = str(info.value)
    assert variable in message and "\n" not in message
    for secret in (TEST_BOT_TOKEN, TEST_SIGNING_SECRET, "xoxp-user-token", "xoxb-wrong-kind"):
        assert secret not in message


async def test_run_slack_with_refused_bot_token_names_it(slack_core, slack_api):
    slack_api.script("auth.test", error="invalid_auth")
    with pytest.raises(ConfigError) as info:
        await run_slack(slack_core)
    assert "SLACK_BOT_TOKEN" in str(info.value) and "invalid_auth" in str(info.value)
    assert TEST_BOT_TOKEN not in str(info.value)


async def test_run_slack_with_refused_app_token_names_it(slack_core, slack_api):
    revoked = "xapp-1-revoked-app-token"
    with pytest.raises(ConfigError) as info:
        await asyncio.wait_for(run_slack(_with(slack_core, slack_app_token=revoked)), 30)
    assert "SLACK_APP_TOKEN" in str(info.value) and revoked not in str(info.value)
    [call] = slack_api.of("apps.connections.open")
    assert call.headers["Authorization"] == f"Bearer {revoked}"


async def test_run_slack_http_mode_serves_and_never_logs_tokens(slack_core, slack_api, caplog):
    caplog.set_level(logging.DEBUG)
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(run_slack(_with(slack_core, slack_port=0), on_ready=ready.set_result))
    try:
        info = await asyncio.wait_for(ready, 20)
        assert info["mode"] == "http" and info["team_id"] == TEAM_ID
        url = f"http://127.0.0.1:{info['port']}/slack/events"
        status, _ = await send(url, slash_body("/digest", "help", slack_api.response_url()))
        assert status == 200
        await slack_api.wait_for(lambda f: len(f.of("response")) == 1)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    for secret in (TEST_BOT_TOKEN, TEST_SIGNING_SECRET):
        assert secret not in caplog.text


async def test_arxiv_lookup_runs_on_its_own_lane(slack_core, slack_api):
    """/paper <unknown arXiv id> waits on arXiv in the arXiv lane; catalog answers go on meanwhile."""
    arxiv = SlowArxiv()
    core = _with(slack_core, arxiv_api_url=arxiv.url)
    server = await serve_app(build_slack_app(core).web_app())
    try:
        status, text = await send(server.url, slash_body("/paper", "1706.03762", slack_api.response_url("lookup")))
        assert (status, text) == (200, "")
        await asyncio.get_running_loop().run_in_executor(None, arxiv.arrived.wait, 30)
        status, _ = await send(server.url, slash_body("/digest", "topics", slack_api.response_url("topics")))
        await slack_api.wait_for(lambda f: len(f.of("response")) == 1)
        [first] = responses(slack_api)
        assert "1706.03762" not in first["text"]  # the topics answer overtook the held arXiv lookup
        arxiv.release()
        await slack_api.wait_for(lambda f: len(f.of("response")) == 2)
        lookup = responses(slack_api)[1]
        assert "1706.03762" in lookup["text"] and "Attention" in json.dumps(lookup)
        assert arxiv.requests == 1
    finally:
        arxiv.close()
        await server.stop()


async def test_subscription_change_follows_the_reply_visibility(app_server, slack_core, slack_api):
    theme = slack_core.theme_names[0]
    await send(app_server.url, slash_body("/digest", f"subscribe {theme}", slack_api.response_url()))
    await slack_api.wait_for(lambda f: len(f.of("response")) == 1)
    [reply] = responses(slack_api)
    assert reply["response_type"] == "in_channel" and theme in reply["text"]


async def test_run_slack_socket_mode_acks_over_the_websocket(slack_core, slack_api):
    """Socket Mode for real: apps.connections.open, a websocket, an envelope in, its ack out, then the answer."""
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(run_slack(_with(slack_core, slack_app_token=TEST_APP_TOKEN, slack_signing_secret=None),
                                           on_ready=ready.set_result))
    try:
        info = await asyncio.wait_for(ready, 20)
        assert info["mode"] == "socket" and info["team_id"] == TEAM_ID
        await slack_api.push_slash_command("env-1", slash_body("/digest", "help", slack_api.response_url()))
        await slack_api.wait_for(lambda f: any(a.get("envelope_id") == "env-1" for a in f.socket_acks))
        await slack_api.wait_for(lambda f: len(f.of("response")) == 1)
        assert "/paper" in json.dumps(responses(slack_api)[0])
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_expired_response_url_falls_back_to_post_ephemeral(app_server, slack_api):
    gone = f"http://127.0.0.1:{slack_api.port}/expired-response-url"
    status, _ = await send(app_server.url, slash_body("/digest", "help", gone))
    assert status == 200
    await slack_api.wait_for(lambda f: len(f.of("chat.postEphemeral")) == 1)
    assert slack_api.of("chat.postEphemeral")[0].body["text"]


async def test_backend_failure_is_logged_recorded_and_told(app_server, slack_core, slack_api, caplog):
    """A real fault (the channels table is gone) reaches the per-interaction boundary: log, record, tell."""
    slack_core.db.execute("DROP TABLE channels")
    await send(app_server.url, slash_body("/digest", "status", slack_api.response_url()))
    await slack_api.wait_for(lambda f: len(f.of("response")) == 1)
    [reply] = responses(slack_api)
    assert reply["text"] == MSG_INTERNAL and reply["response_type"] == "ephemeral"
    assert "Traceback" not in json.dumps(reply)
    rows = list(slack_core.db.query("select command, ok from command_log where ok = 0"))
    assert rows and rows[-1]["command"].startswith("/digest")
    assert "/digest failed in slack:T0001:" in caplog.text
