"""The neutral command layer through a real SQLite core: every subcommand, hostile input, permissions."""

from __future__ import annotations

import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.commands import (
    ADMINS_REFUSAL,
    COMMANDS,
    DISCORD_REFUSAL,
    MAX_CHOICES,
    NOT_SUBSCRIBED,
    Invocation,
    add_subscription_listener,
    autocomplete,
    commands_markdown,
    help_text,
    normalise_time,
    remove_subscription_listener,
    run_sub,
    run_text,
    workspace_prefix,
)
from bot.render_discord import render_discord_reply
from bot.render_slack import render_slack_reply
from bot.render_text import render_text
from digests import catalog, channels
from digests.models import Digest, Paper

REALDATA = Path(__file__).parent / "fixtures" / "realdata"
SLACK = "slack:T1:C1"


@pytest.fixture
def slack(fixed_now):
    return Invocation("slack", SLACK, "U1", now=fixed_now)


def digest(core, inv, text):
    return run_text(core, inv, "digest", text)


# -- /paper ------------------------------------------------------------------------------------


def test_paper_finds_seed_paper_by_title_words(fresh_core, slack):
    reply = run_text(fresh_core, slack, "paper", "constitutional ai")
    assert reply.ok and 1 <= len(reply.cards) <= 3
    assert reply.cards[0].paper.title.startswith("Constitutional AI")
    assert reply.ephemeral


def test_paper_by_arxiv_id_shows_where_this_workspace_already_got_it(fresh_core, slack, fixed_now):
    paper = Paper(
        title="A new preference paper",
        abstract="We align.",
        authors=("A",),
        arxiv_id="2611.01234",
        version=1,
        origin="arxiv",
    )
    catalog.upsert_arxiv_papers(fresh_core, [paper], fixed_now)
    for channel in (SLACK, "slack:T1:C2", "slack:T9:C1"):
        fresh_core.db["sent_papers"].insert(
            {
                "channel": channel,
                "arxiv_id": "2611.01234",
                "version": 1,
                "digest_id": f"{channel}|2026-W47",
                "sent_at": "2026-11-16T09:00:00+00:00",
            }
        )
    reply = run_text(
        fresh_core,
        slack,
        "paper",
        "<https://arxiv.org/abs/2611.01234v1|arxiv.org/abs/2611.01234v1>",
    )
    assert reply.ok and reply.cards[0].paper.arxiv_id == "2611.01234"
    assert [c for c, _ in reply.cards[0].posted] == [SLACK, "slack:T1:C2"]
    assert "Already posted in slack:T1:C1 on 2026-11-16" in render_text(reply)


def test_paper_nothing_found_offers_closest_titles(fresh_core, slack):
    reply = run_text(fresh_core, slack, "paper", "constitutonal")
    assert reply.ok and not reply.cards
    assert "Nothing in the catalog matches" in reply.text
    assert any(s.startswith("Constitutional AI") for s in reply.suggestions)


class ArxivHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        ids = self.path.split("id_list=", 1)[-1].split("&", 1)[0]
        name = (
            "arxiv_api_2026_idlist_1706.03762_v7_multiversion.xml"
            if ids == "1706.03762"
            else "arxiv_api_2026_idlist_0000.0000_empty_result.xml"
        )
        body = (REALDATA / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def arxiv_core(monkeypatch, fixed_now):
    server = ThreadingHTTPServer(("127.0.0.1", 0), ArxivHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "DIGESTBOT_ARXIV_API_URL",
        f"http://127.0.0.1:{server.server_address[1]}/api/query",
    )
    from digests.service import open_core

    yield open_core(clock=lambda: fixed_now)
    server.shutdown()
    server.server_close()


def test_paper_unknown_arxiv_id_is_looked_up_on_arxiv(arxiv_core, slack):
    reply = run_text(arxiv_core, slack, "paper", "arXiv:1706.03762")
    assert reply.ok, reply.text
    assert reply.cards[0].paper.title == "Attention Is All You Need"
    assert "found on arXiv and added to the catalog" in reply.text
    assert catalog.get_by_arxiv_id(arxiv_core, "1706.03762") is not None


def test_paper_id_arxiv_does_not_know(arxiv_core, slack):
    reply = run_text(arxiv_core, slack, "paper", "2611.99999")
    assert not reply.ok and reply.text == "arXiv has no paper 2611.99999; check the id."


@pytest.fixture
def offline_core(fresh_core):
    """The core with arXiv pointed at a closed loopback port: nothing in these tests reaches the internet."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fresh_core.settings = replace(fresh_core.settings, arxiv_api_url=f"http://127.0.0.1:{port}/api/query")
    return fresh_core


def test_paper_arxiv_unreachable_says_so_plainly(offline_core, slack):
    reply = run_text(offline_core, slack, "paper", "2611.99999")
    assert not reply.ok and "arXiv could not be reached" in reply.text


HOSTILE = [
    "",
    " ",
    "x" * 10_000,
    '"unbalanced',
    "\"\" '' ``",
    "AND",
    "OR OR OR",
    "NOT constitutional",
    "NEAR(constitutional ai, 2)",
    "constitutional*",
    "*",
    "-",
    "-constitutional",
    "title:foo",
    "{col}: x",
    "^ $ % ( ) [ ] { } ; : /",
    "\u00fcber d\u00e9j\u00e0 vu \u6f22\u5b57 \u0645\u0631\u062d\u0628\u0627",
    "\U0001f600\U0001f680",
    "\x00\x1b[31m\u200b\ufeff",
    "<!channel>",
    "<!here> <@U123|bob> <#C1|general>",
    "@everyone @here",
    "<https://evil.example|arxiv.org/abs/2212.08073>",
    "'; DROP TABLE papers; --",
    "2212.08073v99999999999999999999",
    "hep-th/",
    "arxiv.org/abs/",
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("command", ["paper", "digest"])
def test_hostile_text_gives_a_clear_reply_and_never_raises(offline_core, slack, command, text):
    fresh_core = offline_core
    reply = run_text(fresh_core, slack, command, text)
    assert reply.text and len(reply.text.splitlines()[0]) <= 500
    render_text(reply)
    for rendered in (
        render_slack_reply(reply)["text"],
        render_discord_reply(reply)["content"],
    ):
        assert "<!channel>" not in rendered and "@everyone" not in rendered
    assert fresh_core.db["papers"].count > 0  # nothing was dropped


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"query": None},
        {"query": ""},
        {"query": "x" * 10_000},
        {"query": "\U0001f600"},
    ],
)
def test_paper_typed_options_hostile(fresh_core, fixed_now, args):
    inv = Invocation("discord", "discord:1:2", "9", can_manage=False, now=fixed_now)
    reply = run_sub(fresh_core, inv, "paper", None, args)
    assert reply.text


# -- /digest -----------------------------------------------------------------------------------


def test_subscribe_topics_schedule_status_unsubscribe_round_trip(fresh_core, slack):
    reply = digest(fresh_core, slack, "subscribe rlhf Oversight")
    assert reply.ok and not reply.ephemeral, reply.text
    assert channels.get_channel(fresh_core, SLACK).themes == ("rlhf", "oversight")
    topics = digest(fresh_core, slack, "topics").text.splitlines()
    assert any(line.startswith("\u2713 rlhf:") for line in topics)
    assert any(line.startswith("\u2022 interpretability:") for line in topics)
    reply = digest(fresh_core, slack, "schedule fri 8:30am berlin")
    assert reply.ok, reply.text
    schedule = channels.get_channel(fresh_core, SLACK).schedule
    assert (schedule.weekday, schedule.time, schedule.tz) == (
        4,
        "08:30",
        "Europe/Berlin",
    )
    assert "next one Fri 27 Nov 08:30 CET" in reply.text
    status = digest(fresh_core, slack, "status")
    assert status.ok and "Last digest: none sent yet" in status.text and "Friday at 08:30" in status.text
    reply = digest(fresh_core, slack, "unsubscribe oversight")
    assert reply.ok and channels.get_channel(fresh_core, SLACK).themes == ("rlhf",)
    reply = digest(fresh_core, slack, "unsubscribe")
    assert reply.ok and "paused" in reply.text and channels.get_channel(fresh_core, SLACK).paused


def test_preview_renders_the_next_digest(fresh_core, slack):
    assert digest(fresh_core, slack, "preview").text == NOT_SUBSCRIBED
    digest(fresh_core, slack, "subscribe rlhf")
    reply = digest(fresh_core, slack, "preview")
    assert reply.ok and reply.ephemeral and isinstance(reply.digest, Digest)
    assert reply.digest.channel == SLACK
    assert render_text(reply).splitlines()[-1] == reply.digest.coverage.text


def test_help_lists_every_command(fresh_core, slack):
    for text in ("help", "", "   "):
        reply = digest(fresh_core, slack, text)
        assert reply.text == help_text()
    for command in COMMANDS:
        assert command.usage in help_text() and command.example in help_text()


@pytest.mark.parametrize(
    "text, suggestion",
    [
        ("subscibe rlhf", "/digest subscribe"),
        ("shedule fri 09:00", "/digest schedule"),
        ("stats", "/digest status"),
    ],
)
def test_unknown_subcommand_suggests(fresh_core, slack, text, suggestion):
    reply = digest(fresh_core, slack, text)
    assert not reply.ok and suggestion in reply.suggestions


def test_unknown_theme_suggests(fresh_core, slack):
    reply = digest(fresh_core, slack, "subscribe rlfh")
    assert not reply.ok and "rlhf" in reply.suggestions
    assert channels.get_channel(fresh_core, SLACK) is None


def test_bad_time_zone_suggests(fresh_core, slack):
    digest(fresh_core, slack, "subscribe rlhf")
    reply = digest(fresh_core, slack, "schedule mon 09:00 Europe/Berln")
    assert not reply.ok and "Europe/Berlin" in reply.suggestions


@pytest.mark.parametrize(
    "text",
    [
        "schedule",
        "schedule fri",
        "schedule fri 25:00",
        "schedule xyz 09:00",
        "schedule fri 09:00 UTC extra",
        "subscribe",
        "unsubscribe nope",
    ],
)
def test_bad_arguments_get_one_line(fresh_core, slack, text):
    digest(fresh_core, slack, "subscribe rlhf")
    reply = digest(fresh_core, slack, text)
    assert not reply.ok and "\n" not in reply.text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("8am", "08:00"),
        ("8:30 pm", "20:30"),
        ("12am", "00:00"),
        ("0830", "08:30"),
        ("8h30", "8:30"),
        ("09:00", "09:00"),
    ],
)
def test_normalise_time(text, expected):
    assert normalise_time(text) == expected


def test_run_sub_typed_options(fresh_core, fixed_now):
    inv = Invocation("discord", "discord:1:2", "9", can_manage=True, now=fixed_now)
    assert run_sub(fresh_core, inv, "digest", "subscribe", {"theme": "rlhf"}).ok
    reply = run_sub(
        fresh_core,
        inv,
        "digest",
        "schedule",
        {"day": "sun", "time": "17:00", "tz": "Asia/Tokyo"},
    )
    assert reply.ok and channels.get_channel(fresh_core, "discord:1:2").schedule.tz == "Asia/Tokyo"
    missing = run_sub(fresh_core, inv, "digest", "schedule", {"day": "sun"})
    assert not missing.ok and "needs time" in missing.text
    assert not run_sub(fresh_core, inv, "digest", "nope", {}).ok
    assert not run_sub(fresh_core, inv, "nope", None, {}).ok


def test_subscription_changes_notify_listeners(fresh_core, fixed_now):
    seen: list[str] = []
    own: list[str] = []
    add_subscription_listener(seen.append)
    try:
        inv = Invocation("slack", SLACK, "U1", now=fixed_now, on_change=own.append)
        digest(fresh_core, inv, "subscribe rlhf")
        digest(fresh_core, inv, "schedule tue 10:00")
        digest(fresh_core, inv, "topics")
    finally:
        remove_subscription_listener(seen.append)
    assert seen == own == [SLACK, SLACK]


def test_commands_are_logged(fresh_core, slack):
    digest(fresh_core, slack, "subscribe rlhf")
    digest(fresh_core, slack, "nonsense")
    rows = list(fresh_core.db.query("select command, ok, user_id from command_log order by id"))
    assert rows == [
        {"command": "/digest subscribe", "ok": 1, "user_id": "U1"},
        {"command": "/digest", "ok": 0, "user_id": "U1"},
    ]


# -- permissions -------------------------------------------------------------------------------


def test_anyone_may_change_a_slack_channel_by_default(fresh_core, slack):
    assert digest(fresh_core, slack, "subscribe rlhf").ok


def test_admin_list_restricts_changes(fresh_core, fixed_now):
    fresh_core.settings = replace(fresh_core.settings, admins=("UADMIN",))
    other = Invocation("slack", SLACK, "U1", now=fixed_now)
    admin = Invocation("slack", SLACK, "UADMIN", now=fixed_now)
    refused = digest(fresh_core, other, "subscribe rlhf")
    assert not refused.ok and refused.text == ADMINS_REFUSAL
    assert channels.get_channel(fresh_core, SLACK) is None
    assert digest(fresh_core, other, "topics").ok  # reading is for everyone
    assert digest(fresh_core, admin, "subscribe rlhf").ok


@pytest.mark.parametrize("can_manage, ok", [(True, True), (False, False), (None, False)])
def test_discord_needs_manage_channels(fresh_core, fixed_now, can_manage, ok):
    inv = Invocation("discord", "discord:1:2", "9", can_manage=can_manage, now=fixed_now)
    reply = run_sub(fresh_core, inv, "digest", "subscribe", {"theme": "rlhf"})
    assert reply.ok is ok
    if not ok:
        assert reply.text == DISCORD_REFUSAL


def test_discord_admin_without_manage_channels_may(fresh_core, fixed_now):
    fresh_core.settings = replace(fresh_core.settings, admins=("9",))
    inv = Invocation("discord", "discord:1:2", "9", can_manage=False, now=fixed_now)
    assert run_sub(fresh_core, inv, "digest", "subscribe", {"theme": "rlhf"}).ok


# -- autocomplete, docs ------------------------------------------------------------------------


def test_autocomplete_paper_titles_with_unfinished_word(fresh_core):
    choices = autocomplete(fresh_core, "paper", None, "query", "constitu")
    assert choices and choices[0][0].startswith("Constitutional AI")
    assert all(len(n) <= 100 and len(v) <= 100 for n, v in choices)
    assert autocomplete(fresh_core, "paper", None, "query", "") == []
    assert autocomplete(fresh_core, "paper", None, "query", "training lang")[0][0].startswith(
        "Training language models"
    )
    assert len(autocomplete(fresh_core, "paper", None, "query", "language models")) <= MAX_CHOICES


def test_autocomplete_themes_keeps_earlier_words(fresh_core):
    assert autocomplete(fresh_core, "digest", "subscribe", "theme", "rlhf over") == [
        ("rlhf oversight", "rlhf oversight")
    ]
    assert len(autocomplete(fresh_core, "digest", "subscribe", "theme", "")) == len(fresh_core.themes)


def test_autocomplete_time_zones_and_days(fresh_core):
    assert ("Europe/Berlin", "Europe/Berlin") in autocomplete(fresh_core, "digest", "schedule", "tz", "berl")
    assert len(autocomplete(fresh_core, "digest", "schedule", "tz", "")) == MAX_CHOICES
    assert autocomplete(fresh_core, "digest", "schedule", "day", "fr") == [("Friday", "fri")]
    assert autocomplete(fresh_core, "digest", "nope", "x", "y") == []


def test_commands_markdown_has_a_row_per_command():
    table = commands_markdown()
    for command in COMMANDS:
        assert f"`{command.usage}`" in table and command.help in table
    assert len(table.splitlines()) == len(COMMANDS) + 2


def test_every_command_has_help_and_example():
    for command in COMMANDS:
        assert command.help.endswith(".") and command.example.startswith(f"/{command.name}")
        assert all(o.help for o in command.options)


def test_workspace_prefix():
    assert workspace_prefix("slack:T1:C1") == "slack:T1:"
    assert workspace_prefix("discord:1:2") == "discord:1:"
    assert workspace_prefix("console:local") == "console:"


def test_status_names_a_broken_channel(fresh_core, slack):
    digest(fresh_core, slack, "subscribe rlhf")
    channels.mark_broken(fresh_core, SLACK, "the bot was removed from the channel (not_in_channel)")
    text = digest(fresh_core, slack, "status").text
    assert "Delivery is stopped: the bot was removed from the channel (not_in_channel)." in text


def test_console_operator_may_always_change(fresh_core, fixed_now):
    fresh_core.settings = replace(fresh_core.settings, admins=("UADMIN",))
    inv = Invocation("console", "console:local", "console", now=fixed_now)
    assert digest(fresh_core, inv, "subscribe rlhf").ok


@pytest.mark.parametrize("partial", HOSTILE)
def test_autocomplete_hostile_partials(fresh_core, partial):
    for option, sub in (("query", None), ("theme", "subscribe"), ("tz", "schedule"), ("day", "schedule")):
        command = "paper" if option == "query" else "digest"
        choices = autocomplete(fresh_core, command, sub, option, partial)
        assert len(choices) <= MAX_CHOICES and all(len(n) <= 100 and len(v) <= 100 for n, v in choices)


def test_autocomplete_theme_after_a_space_offers_the_next_theme(fresh_core):
    choices = autocomplete(fresh_core, "digest", "subscribe", "theme", "rlhf ")
    assert choices and all(v.startswith("rlhf ") for _, v in choices) and ("rlhf rlhf", "rlhf rlhf") not in choices


def test_failing_listener_does_not_fail_the_change(fresh_core, fixed_now, caplog):
    def broken(key: str) -> None:
        raise RuntimeError("scheduler gone")

    inv = Invocation("slack", SLACK, "U1", now=fixed_now, on_change=broken)
    assert digest(fresh_core, inv, "subscribe rlhf").ok
    assert channels.get_channel(fresh_core, SLACK).themes == ("rlhf",)
    assert "subscription listener" in caplog.text


def test_paper_with_a_misspelt_title_puts_the_closest_title_first(fresh_core):
    from bot.commands import Invocation, run_text

    reply = run_text(fresh_core, Invocation(platform="console", channel="console:t", user="u"), "paper",
                     "Constitutonal AIx: Harmlesness frm AI Feedbak")
    assert reply.ok
    assert reply.cards[0].paper.title == "Constitutional AI: Harmlessness from AI Feedback"
    assert reply.text.startswith("No paper has all of")
