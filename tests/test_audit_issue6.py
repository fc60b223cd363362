"""Audit of issue 6 (Slack app): each requirement not already proven elsewhere, through the real bolt app.

Signed slash commands (built from the realdata payload bodies) go to the app served on a loopback port; answers,
posts and history reads land in the loopback fake Slack Web API (tests/slack_fakes.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
import urllib.parse
from datetime import UTC, datetime

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.deliver import FIX_HINTS, Deliverer
from bot.posting import RateLimiter, SimulatedCrash
from bot.render_slack import render_slack
from bot.slack_app import build_slack_app, close_lanes, make_web_app, make_web_client
from bot.slack_poster import (
    METADATA_EVENT_TYPE,
    PERMANENT_ERRORS,
    SlackPoster,
    make_slack_poster,
)
from digests import catalog, ledger
from digests.arxiv_feed import parse_atom
from digests.channels import get_channel, subscribe
from digests.models import Digest, ThemeScore
from tests.slack_fakes import (
    TEAM_ID,
    TEST_BOT_TOKEN,
    FakeSlackAPI,
    realdata,
    serve_app,
    sign_headers,
    slash_body,
)
from tests.test_slack_app import _with, assert_within_limits, send
from tests.test_slack_poster import make_digest

WEATHER_CHANNEL = urllib.parse.parse_qs(
    realdata("slack_docs_slash_command_weather_payload_body.txt")
)["channel_id"][0]
HERE = f"slack:{TEAM_ID}:{WEATHER_CHANNEL}"
"""The channel the documented payload comes from: where our slash commands run."""
DIGEST_CHANNEL = f"slack:{TEAM_ID}:C0DIGEST1"
VERIFICATION_TOKEN = "gIkuvaNzQIHg97ATvDxqgjtO"
"""The deprecated `token` field of the documented payload: a secret Slack sends, never to be echoed."""


async def ask(server, fake: FakeSlackAPI, command: str, text: str, **over: str) -> dict:
    """Send one signed slash command and return the ephemeral/in-channel answer posted to its response URL."""
    name = f"r{len(fake.calls)}"
    status, ack = await send(
        server.url, slash_body(command, text, fake.response_url(name), **over)
    )
    assert (status, ack) == (200, "")
    await fake.wait_for(lambda f: any(c.name == name for c in f.of("response")))
    [answer] = [c.body for c in fake.of("response") if c.name == name]
    assert_within_limits(answer)
    return answer


def deliverer(
    core, fake: FakeSlackAPI, digest: Digest, client: AsyncWebClient | None = None
) -> Deliverer:
    """A Deliverer posting `digest` through a fresh SlackPoster (a process start)."""
    client = client or AsyncWebClient(
        token=TEST_BOT_TOKEN, base_url=fake.api_url, retry_handlers=[]
    )
    poster = SlackPoster(core, client)
    return Deliverer(
        core, posters=lambda platform: poster, build=lambda c, key, now: digest
    )


@pytest.fixture
def unpaced(slack_core):
    slack_core.cache["rate_limiters"] = {"slack": RateLimiter(None, 0.0)}
    return slack_core


# ------------------------------------------------------------------ /paper cards


@pytest.fixture
def attention(slack_core):
    """1706.03762 in the catalog (the real API record) and posted in a digest in another channel of this workspace,
    and in a channel of another workspace."""
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    page = parse_atom(
        (realdata("arxiv_api_2026_idlist_1706.03762_v7_multiversion.xml")).encode()
    )
    [paper] = catalog.upsert_arxiv_papers(slack_core, page.papers, now).new
    catalog.store_scores(
        slack_core,
        paper.id,
        [
            ThemeScore(
                "interpretability",
                0.8,
                True,
                ("Toy Models of Superposition",),
                ("attention",),
            ),
            ThemeScore("rlhf", 0.1, False),
        ],
    )
    for channel in (DIGEST_CHANNEL, "slack:T9999:C0OTHER01"):
        slack_core.db.table("sent_papers").insert(
            {
                "channel": channel,
                "arxiv_id": paper.arxiv_id,
                "version": 7,
                "digest_id": f"{channel}|2026-W48",
                "sent_at": "2026-11-24T09:00:00+00:00",
            }
        )
    return paper


async def test_paper_card_has_link_authors_date_excerpt_and_where_posted_here(
    app_server, slack_api, attention
):
    answer = await ask(app_server, slack_api, "/paper", "1706.03762")
    assert answer["response_type"] == "ephemeral"
    [card] = [b for b in answer["blocks"] if "Attention" in json.dumps(b)]
    text = card["text"]["text"]
    assert "<https://arxiv.org/abs/1706.03762|Attention Is All You Need>" in text
    assert "Ashish Vaswani" in text
    assert re.search(
        r" \u00b7 \d{4}-\d{2}-\d{2} \u00b7 themes: interpretability\n", text
    )  # rlhf didn't match
    assert "Why: close to \u201cToy Models of Superposition\u201d" in text
    assert "dominant sequence transduction models" in text  # the abstract excerpt
    assert "Already posted in <#C0DIGEST1> on 2026-11-24" in text
    assert "C0OTHER01" not in json.dumps(
        answer
    )  # another workspace's channel is not shown


async def test_paper_answers_at_most_three_cards(app_server, slack_api):
    answer = await ask(
        app_server, slack_api, "/paper", "language models human feedback"
    )
    cards = [
        b
        for b in answer["blocks"]
        if b["type"] == "section" and b["text"]["text"].startswith("*")
    ]
    assert 1 <= len(cards) <= 3


async def test_paper_nothing_found_offers_the_closest_titles(app_server, slack_api):
    answer = await ask(
        app_server, slack_api, "/paper", "Constitutonal Harmlesness Feedbak"
    )
    assert "Nothing in the catalog matches" in answer["text"]
    assert "Constitutional AI: Harmlessness from AI Feedback" in json.dumps(answer)


@pytest.mark.parametrize(
    "text", ["-reward -model", "NEAR(reward model)", "reward OR model*", "AND", '"']
)
async def test_more_hostile_queries_get_a_clear_answer(app_server, slack_api, text):
    answer = await ask(app_server, slack_api, "/paper", text)
    assert answer["text"].strip() and "went wrong" not in answer["text"]


async def test_the_payloads_verification_token_is_never_echoed_or_logged(
    app_server, slack_api, caplog
):
    caplog.set_level(logging.DEBUG)
    answer = await ask(
        app_server, slack_api, "/paper", "attention", token=VERIFICATION_TOKEN
    )
    assert VERIFICATION_TOKEN in slash_body(
        "/paper", "x", None
    )  # the fixture does carry it
    assert (
        TEST_BOT_TOKEN not in json.dumps(answer) and TEST_BOT_TOKEN not in caplog.text
    )
    assert VERIFICATION_TOKEN not in caplog.text


# ------------------------------------------------------------------ /digest, every subcommand


async def test_every_digest_subcommand_through_the_app(
    app_server, slack_api, slack_core
):
    first, second = slack_core.theme_names[:2]
    answer = await ask(app_server, slack_api, "/digest", f"subscribe {first} {second}")
    assert get_channel(slack_core, HERE).themes == (first, second)
    assert answer["response_type"] == "in_channel"

    topics = json.dumps(await ask(app_server, slack_api, "/digest", "topics"))
    assert all(name in topics for name in slack_core.theme_names)
    assert (
        f"\\u2713 {first}:" in topics and f"\\u2713 {second}:" in topics
    )  # the channel's themes are ticked
    assert f"\\u2713 {slack_core.theme_names[2]}" not in topics

    await ask(app_server, slack_api, "/digest", "schedule fri 09:30 Europe/Paris")
    schedule = get_channel(slack_core, HERE).schedule
    assert (schedule.weekday, schedule.time, schedule.tz) == (
        4,
        "09:30",
        "Europe/Paris",
    )

    preview = await ask(app_server, slack_api, "/digest", "preview")
    assert preview["response_type"] == "ephemeral" and preview["blocks"]
    status = json.dumps(await ask(app_server, slack_api, "/digest", "status"))
    assert (
        "Friday at 09:30" in status
        and "Last digest" in status
        and "Last arXiv fetch" in status
    )

    await ask(app_server, slack_api, "/digest", f"unsubscribe {second}")
    assert get_channel(slack_core, HERE).themes == (first,)
    await ask(app_server, slack_api, "/digest", "unsubscribe")
    assert get_channel(slack_core, HERE).themes == ()

    help_text = json.dumps(await ask(app_server, slack_api, "/digest", "help"))
    for sub in ("subscribe", "unsubscribe", "topics", "schedule", "preview", "status"):
        assert sub in help_text


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [("subscibe rlhf", "/digest subscribe"), ("subscribe rlfh", "rlhf")],
)
async def test_typos_get_suggestions(
    app_server, slack_api, slack_core, text, suggestion
):
    answer = await ask(app_server, slack_api, "/digest", text)
    assert suggestion in json.dumps(answer)
    assert (
        get_channel(slack_core, HERE) is None
        or get_channel(slack_core, HERE).themes == ()
    )


async def test_configured_admins_alone_may_change_a_subscription(slack_core, slack_api):
    core = _with(slack_core, admins=("U0ADMIN01",))
    server = await serve_app(build_slack_app(core).web_app())
    try:
        theme = core.theme_names[0]
        refused = await ask(
            server, slack_api, "/digest", f"subscribe {theme}"
        )  # the payload's user, not an admin
        assert "admins" in refused["text"] and refused["response_type"] == "ephemeral"
        assert get_channel(core, HERE) is None or get_channel(core, HERE).themes == ()
        await ask(
            server, slack_api, "/digest", f"subscribe {theme}", user_id="U0ADMIN01"
        )
        assert get_channel(core, HERE).themes == (theme,)
    finally:
        await server.stop()


# ------------------------------------------------------------------ posting


async def test_the_poster_sets_the_metadata_whatever_the_renderer_says(
    unpaced, slack_api
):
    """Single source of truth: METADATA_EVENT_TYPE on every part, which is what find_posted looks for."""
    digest = make_digest(n_items=40, abstract_chars=2500)
    poster = SlackPoster(
        unpaced, AsyncWebClient(token=TEST_BOT_TOKEN, base_url=slack_api.api_url)
    )
    await poster.post(digest.channel, digest)
    calls = slack_api.of("chat.postMessage")
    assert len(calls) == len(render_slack(digest)) >= 2
    assert {c.body["metadata"]["event_type"] for c in calls} == {METADATA_EVENT_TYPE}
    assert all(c.body["unfurl_links"] is False and c.body["text"] for c in calls)


class CrashAfter(AsyncWebClient):
    """The real client, except the process "dies" after `posts` successful chat.postMessage calls."""

    def __init__(self, posts: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.left = posts

    async def chat_postMessage(self, **kwargs):
        if self.left == 0:
            raise SimulatedCrash("between thread replies")
        self.left -= 1
        return await super().chat_postMessage(**kwargs)


async def test_crash_between_thread_replies_is_finished_on_restart_without_duplicates(
    unpaced, slack_api, fixed_now
):
    subscribe(unpaced, DIGEST_CHANNEL, [unpaced.theme_names[0]])
    digest = dataclasses.replace(
        make_digest(n_items=60, abstract_chars=2500), id=f"{DIGEST_CHANNEL}|2026-W48"
    )
    parts = len(render_slack(digest))
    assert parts >= 2
    crashing = CrashAfter(
        1, token=TEST_BOT_TOKEN, base_url=slack_api.api_url, retry_handlers=[]
    )
    with pytest.raises(SimulatedCrash):
        await deliverer(unpaced, slack_api, digest, crashing).deliver(
            DIGEST_CHANNEL, fixed_now
        )
    assert (
        len(slack_api.of("chat.postMessage")) == 1
    )  # the main message only: its thread replies never went

    [result] = await deliverer(unpaced, slack_api, digest).recover()

    assert result.outcome == "recovered"
    posted = [
        c.body["metadata"]["event_payload"].get("part", 0)
        for c in slack_api.of("chat.postMessage")
    ]
    assert sorted(posted) == list(range(parts))  # every part exactly once
    [(_, main_ts)] = [(c, m["ts"]) for c in ["C0DIGEST1"] for m in slack_api.history[c]]
    assert len(slack_api.threads[("C0DIGEST1", main_ts)]) == parts - 1
    assert ledger.get_delivery(unpaced, digest.id).status == "done"
    # A second recovery finds the thread complete and posts nothing.
    assert (
        await SlackPoster(
            unpaced, make_web_client(TEST_BOT_TOKEN, unpaced.settings)
        ).find_posted(DIGEST_CHANNEL, digest.id)
        is not None
    )
    assert len(slack_api.of("chat.postMessage")) == parts


async def test_find_posted_posts_only_the_thread_replies_missing(
    unpaced, slack_api, fixed_now
):
    """Part 2 of the thread is there, part 1 is not: recovery posts part 1 alone."""
    subscribe(unpaced, DIGEST_CHANNEL, [unpaced.theme_names[0]])
    digest = dataclasses.replace(
        make_digest(n_items=100, abstract_chars=1000), id=f"{DIGEST_CHANNEL}|2026-W48"
    )
    assert len(render_slack(digest)) == 3
    await deliverer(unpaced, slack_api, digest).deliver(DIGEST_CHANNEL, fixed_now)
    [main] = slack_api.history["C0DIGEST1"]
    thread = slack_api.threads[("C0DIGEST1", main["ts"])]
    del thread[0]  # as if part 1's post had been lost
    before = len(slack_api.of("chat.postMessage"))

    poster = SlackPoster(unpaced, make_web_client(TEST_BOT_TOKEN, unpaced.settings))
    assert (
        await poster.find_posted(DIGEST_CHANNEL, digest.id) == f"C0DIGEST1:{main['ts']}"
    )

    [call] = slack_api.of("chat.postMessage")[before:]
    assert (
        call.body["metadata"]["event_payload"]["part"] == 1
        and call.body["thread_ts"] == main["ts"]
    )
    [history] = [c for c in slack_api.of("conversations.replies")]
    assert history.body["include_all_metadata"] in ("1", "true", "True")


@pytest.mark.parametrize(
    "code",
    [
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "invalid_auth",
        "account_inactive",
    ],
)
async def test_permanent_error_breaks_the_channel_and_the_next_user_there_is_told(
    app_server, slack_api, unpaced, fixed_now, code, caplog
):
    subscribe(unpaced, HERE, [unpaced.theme_names[0]])
    digest = dataclasses.replace(make_digest(), id=f"{HERE}|2026-W48", channel=HERE)
    slack_api.script("chat.postMessage", error=code)
    result = await deliverer(unpaced, slack_api, digest).deliver(HERE, fixed_now)
    assert (
        result.outcome == "broken" and code in get_channel(unpaced, HERE).broken_reason
    )
    answer = json.dumps(await ask(app_server, slack_api, "/paper", "reward"))
    assert PERMANENT_ERRORS[code] in answer and code in answer
    assert (
        FIX_HINTS[code] in answer
    )  # the fix that matches the cause, not always "/invite"
    assert ("/invite" in answer) == (code == "not_in_channel")
    assert TEST_BOT_TOKEN not in answer and TEST_BOT_TOKEN not in caplog.text


async def test_429_retry_after_then_posted_once(unpaced, slack_api, fixed_now):
    subscribe(unpaced, DIGEST_CHANNEL, [unpaced.theme_names[0]])
    digest = dataclasses.replace(make_digest(), id=f"{DIGEST_CHANNEL}|2026-W48")
    slack_api.script("chat.postMessage", status=429, retry_after=0)
    result = await deliverer(unpaced, slack_api, digest).deliver(
        DIGEST_CHANNEL, fixed_now
    )
    assert result.outcome == "posted" and len(slack_api.history["C0DIGEST1"]) == 1


# ------------------------------------------------------------------ configuration


async def test_slack_api_url_from_the_environment_reaches_every_client(
    monkeypatch, slack_api, fresh_core
):
    from digests.settings import load_settings

    monkeypatch.setenv("DIGESTBOT_SLACK_API_URL", slack_api.api_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", TEST_BOT_TOKEN)
    settings = load_settings()
    assert settings.slack_api_url == slack_api.api_url
    core = dataclasses.replace(fresh_core, settings=settings)
    core.cache["rate_limiters"] = {"slack": RateLimiter(None, 0.0)}
    await make_slack_poster(core).post(make_digest().channel, make_digest())
    await make_web_client(settings.slack_bot_token, settings).auth_test()
    assert [c.method for c in slack_api.calls] == ["chat.postMessage", "auth.test"]
    close_lanes(core)


def test_bolt_does_not_warn_about_the_bot_token_in_the_environment(
    monkeypatch, slack_core, caplog
):
    monkeypatch.setenv("SLACK_BOT_TOKEN", TEST_BOT_TOKEN)  # bolt reads it by itself
    caplog.set_level(logging.WARNING)
    build_slack_app(slack_core)
    assert "will be unused" not in caplog.text and TEST_BOT_TOKEN not in caplog.text


async def test_an_unreadable_thread_still_counts_the_digest_as_found(
    unpaced, slack_api, fixed_now, caplog
):
    digest = dataclasses.replace(
        make_digest(n_items=100, abstract_chars=1000), id=f"{DIGEST_CHANNEL}|2026-W48"
    )
    poster = SlackPoster(unpaced, make_web_client(TEST_BOT_TOKEN, unpaced.settings))
    subscribe(unpaced, DIGEST_CHANNEL, [unpaced.theme_names[0]])
    await deliverer(unpaced, slack_api, digest).deliver(DIGEST_CHANNEL, fixed_now)
    slack_api.script("conversations.replies", error="missing_scope")
    assert await poster.find_posted(DIGEST_CHANNEL, digest.id) is not None
    assert "could not read its thread" in caplog.text and "missing_scope" in caplog.text


@pytest.mark.parametrize("signed", [False, True])
async def test_an_unparseable_body_is_refused_without_a_traceback(
    slack_core, slack_api, caplog, signed
):
    server = await serve_app(make_web_app(build_slack_app(slack_core)))
    body = "payload=%7Bnot json"
    try:
        headers = (
            sign_headers(body)
            if signed
            else {"Content-Type": "application/x-www-form-urlencoded"}
        )
        status, _ = await send(server.url, body, headers)
        assert status == 400 and "Traceback" not in caplog.text
        # The app still answers the next, proper command.
        assert (await ask(server, slack_api, "/digest", "help"))["text"]
    finally:
        await server.stop()


async def test_a_signature_from_the_future_is_refused_too(app_server, slack_api):
    body = slash_body("/digest", "help", slack_api.response_url())
    # 6 minutes ahead: still outside Slack's 5-minute window when verified a few seconds later
    status, _ = await send(
        app_server.url, body, sign_headers(body, timestamp=int(time.time()) + 360)
    )
    assert status == 401 and slack_api.calls == []


def test_the_app_and_the_runner_share_one_arxiv_lane(slack_core):
    """The scheduled fetch (bot.runner, via bot.deliver.arxiv_lane) and /paper lookups queue on one lane."""
    from bot.deliver import arxiv_lane, catalog_lane
    from bot.slack_app import lane

    assert lane(slack_core, "arxiv") is arxiv_lane(slack_core)
    assert lane(slack_core, "catalog") is catalog_lane(slack_core)


async def test_a_refused_signature_is_logged_without_the_body_and_names_the_variable(
    app_server, slack_api, caplog
):
    caplog.set_level(logging.DEBUG)
    body = slash_body(
        "/paper", "reward", slack_api.response_url(), token=VERIFICATION_TOKEN
    )
    status, _ = await send(
        app_server.url, body, sign_headers(body, secret="not-the-secret")
    )
    assert status == 401
    assert "SLACK_SIGNING_SECRET" in caplog.text
    assert VERIFICATION_TOKEN not in caplog.text and "reward" not in caplog.text


async def test_an_arxiv_id_arxiv_does_not_know_gets_a_clear_answer(
    slack_core, slack_api
):
    from tests.slack_fakes import SlowArxiv

    arxiv = SlowArxiv(
        body=(realdata("arxiv_api_2026_idlist_0808.05394_empty_result.xml")).encode()
    )
    arxiv.release()
    core = _with(slack_core, arxiv_api_url=arxiv.url)
    server = await serve_app(make_web_app(build_slack_app(core)))
    try:
        answer = await ask(server, slack_api, "/paper", "arXiv:0808.05394")
        assert "0808.05394" in answer["text"] and answer["response_type"] == "ephemeral"
        assert (
            arxiv.requests == 1 and catalog.get_by_arxiv_id(core, "0808.05394") is None
        )
    finally:
        arxiv.close()
        await server.stop()


async def test_slack_escaped_links_and_entities_are_read_as_typed(slack_core, slack_api):
    """Slack sends `&` as `&amp;` and, with link escaping on, a pasted URL as `<url>` or `<url|label>`:
    an escaped link to an arXiv paper not in the catalog is looked up on arXiv, on the arXiv lane (so a
    slow arXiv never holds up catalog answers)."""
    from bot.slack_app import ARXIV_LANE, command_text, lane_for
    from tests.slack_fakes import SlowArxiv

    typed = command_text({"text": "Q&amp;A &lt;b&gt; <https://arxiv.org/abs/1706.03762v5|arxiv.org/abs/…>"})
    assert typed == "Q&A <b> https://arxiv.org/abs/1706.03762v5"
    escaped = {"text": "<https://arxiv.org/abs/1706.03762v5>"}
    assert lane_for(slack_core, "paper", command_text(escaped)) == ARXIV_LANE
    arxiv = SlowArxiv()
    arxiv.release()
    core = _with(slack_core, arxiv_api_url=arxiv.url)
    server = await serve_app(make_web_app(build_slack_app(core)))
    try:
        answer = json.dumps(await ask(server, slack_api, "/paper", escaped["text"]))
        assert arxiv.requests == 1 and "Attention Is All You Need" in answer
    finally:
        arxiv.close()
        await server.stop()


async def test_blocks_slack_refuses_go_out_once_as_plain_text(unpaced, slack_api, caplog):
    """A Block Kit payload error would be refused on every retry: the digest goes out as text, once, findable."""
    digest = make_digest(n_items=40, abstract_chars=2500)
    poster = SlackPoster(unpaced, make_web_client(TEST_BOT_TOKEN, unpaced.settings))
    slack_api.script("chat.postMessage", error="invalid_blocks")
    ref = await poster.post(digest.channel, digest)
    refused, plain = slack_api.of("chat.postMessage")
    assert refused.body.get("blocks") and not plain.body.get("blocks")
    assert plain.body["metadata"]["event_payload"] == {"digest_id": digest.id, "text_only": True}
    text = plain.body["text"]
    assert digest.title in text and digest.items[0].paper.title.split(" <")[0] in text
    assert len(text) <= 4000 and "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "refused its blocks (invalid_blocks)" in caplog.text
    assert await poster.find_posted(digest.channel, digest.id) == ref
    assert slack_api.of("conversations.replies") == [] and len(slack_api.of("chat.postMessage")) == 2


@pytest.mark.parametrize("code", ["restricted_action_read_only_channel", "no_permission"])
async def test_channel_level_refusals_are_permanent(unpaced, slack_api, code):
    from digests.errors import DeliveryError

    poster = SlackPoster(unpaced, make_web_client(TEST_BOT_TOKEN, unpaced.settings))
    slack_api.script("chat.postMessage", error=code)
    with pytest.raises(DeliveryError) as info:
        await poster.post(DIGEST_CHANNEL, make_digest())
    assert info.value.permanent and code in str(info.value)
