"""Audit of issue 5 (weekly digests) as a user meets it: the real CLI, a loopback arXiv, `digestbot run`
in a subprocess, and the delivery failures a channel must be told about.

Regression tests for the gaps the audit found: the coverage line said "since Wednesday" on a Wednesday
and counted the fetch window's exclusive end day as covered; an item's themes did not say which theme
its "Why" came from; a digest whose retries ran out (or that was dropped a week late) was never told
to its channel; broken channels stored a bare platform code ("50013") and were never tried again.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.deliver import Deliverer, broken_sentence, catalog_lane
from bot.posting import RateLimiter, RecordingPoster, permanent_failure, rate_limited
from digests import ledger, select
from digests.channels import get_channel
from digests.errors import DeliveryError
from digests.models import FetchRun, Paper, ThemeScore
from tests.fake_platform import add_channel, builder

REALDATA = Path(__file__).parent / "fixtures" / "realdata"
ARXIV_PAGE = REALDATA / "arxiv_api_2026_search_cat-cs.AI_OR_cat-cs.LG_max50.xml"
THEMES = "rlhf, oversight, interpretability, evaluations, reasoning, instruction-tuning, safety-policy"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def json_of(result):
    import json

    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# -- subscriptions through the CLI --------------------------------------------------------------------------


def test_subscribe_unknown_theme_is_one_line_listing_the_themes():
    result = invoke("subscribe", "console:me", "--theme", "nonsense")
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: There is no theme called 'nonsense'. Themes: {THEMES}"
    assert json_of(invoke("channels", "--json")) == []


@pytest.mark.parametrize("key", ["slack:T1", "irc:#x", "discord:abc:1", "console:"])
def test_subscribe_bad_key_names_the_key_formats(key):
    result = invoke("subscribe", key, "--theme", "rlhf")
    assert result.exit_code == 1
    assert "slack:<team>:<channel>, discord:<guild>:<channel> or console:<name>" in result.output


def test_subscribe_defaults_monday_nine_in_the_zone_given_else_utc_and_five_plus_one():
    invoke("subscribe", "slack:T1:C1", "--theme", "rlhf", "--tz", "Europe/Berlin")
    invoke("subscribe", "discord:1:2", "--theme", "rlhf", "--theme", "oversight")
    invoke("subscribe", "console:me", "--theme", "rlhf", "--day", "thu", "--time", "14:30", "--tz", "America/New_York")
    rows = {c["key"]: c for c in json_of(invoke("channels", "--json"))}
    assert {k: (c["day"], c["time"], c["tz"], c["size_new"], c["size_classic"]) for k, c in rows.items()} == {
        "slack:T1:C1": ("mon", "09:00", "Europe/Berlin", 5, 1),
        "discord:1:2": ("mon", "09:00", "UTC", 5, 1),
        "console:me": ("thu", "14:30", "America/New_York", 5, 1),
    }
    assert rows["discord:1:2"]["themes"] == ["rlhf", "oversight"]


def test_unsubscribing_the_last_theme_pauses_and_deletes_nothing():
    invoke("subscribe", "console:me", "--theme", "rlhf", "--theme", "oversight", "--day", "fri")
    assert "still following rlhf" in invoke("unsubscribe", "console:me", "--theme", "oversight").output
    result = invoke("unsubscribe", "console:me", "--theme", "rlhf")
    assert "console:me is paused: no themes left" in result.output
    (row,) = json_of(invoke("channels", "--json"))
    assert (row["paused"], row["themes"], row["day"]) == (True, [], "fri")
    preview = invoke("digest", "preview", "console:me")
    assert preview.exit_code == 1 and "paused" in preview.output and "Traceback" not in preview.output
    invoke("subscribe", "console:me", "--theme", "rlhf")
    (row,) = json_of(invoke("channels", "--json"))
    assert (row["paused"], row["day"]) == (False, "fri")


def test_config_channels_applied_on_start_then_cli_changes_stand_until_the_entry_changes(env_setup):
    config = env_setup / "digestbot.toml"
    env_setup.mkdir(parents=True, exist_ok=True)
    entry = '[[channels]]\nkey = "slack:T1:C1"\nthemes = ["rlhf"]\nday = "tue"\ntime = "08:00"\ntz = "Europe/Berlin"\n'
    config.write_text(entry)
    (row,) = json_of(invoke("channels", "--json"))
    assert (row["themes"], row["day"], row["time"], row["source"]) == (["rlhf"], "tue", "08:00", "config")

    invoke("subscribe", "slack:T1:C1", "--theme", "oversight")  # a change from outside the file
    (row,) = json_of(invoke("channels", "--json"))  # every command is a fresh start
    assert row["themes"] == ["rlhf", "oversight"] and row["source"] == "cli"

    config.write_text(entry.replace('"tue"', '"wed"'))  # editing the entry makes the file win again
    (row,) = json_of(invoke("channels", "--json"))
    assert (row["themes"], row["day"], row["source"]) == (["rlhf"], "wed", "config")


# -- coverage line after a real `digestbot fetch` against a loopback arXiv -------------------------------------


class _FakeArxiv(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = ARXIV_PAGE.read_bytes() if self.status == 200 else b""
        self.send_response(self.status)
        self.send_header("Content-Type", "application/atom+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def arxiv_server(env_setup, monkeypatch):
    """Start a loopback arXiv on port 0 (answer with `.status`); point DIGESTBOT_ARXIV_API_URL at it."""
    handler = type("Handler", (_FakeArxiv,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env_setup.mkdir(parents=True, exist_ok=True)
    (env_setup / "digestbot.toml").write_text("[arxiv]\ndelay_seconds = 0\nretries = 1\n")
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_URL", f"http://127.0.0.1:{server.server_address[1]}/api/query")
    yield handler
    server.shutdown()
    server.server_close()


def _this_week_span() -> str:
    today = datetime.now(UTC).date()
    return select._span(today - timedelta(days=today.weekday()), today)


def test_coverage_line_after_a_good_fetch_says_what_was_scanned_and_is_last(arxiv_server):
    invoke("subscribe", "console:me", "--theme", "rlhf")
    fetched = invoke("fetch")
    assert fetched.exit_code == 0, fetched.output
    lines = invoke("digest", "preview", "console:me").output.strip().splitlines()
    assert lines[-1] == (f"2 new papers in RLHF and preference learning; scanned 50 cs.AI/cs.CL/cs.CR/cs.LG papers "
                         f"from arXiv, {_this_week_span()}.")
    assert "Multimodal Reward Hacking in Reinforcement Learning" in "\n".join(lines)


def test_coverage_line_after_a_failed_fetch_says_arxiv_could_not_be_reached(arxiv_server):
    arxiv_server.status = 503
    invoke("subscribe", "console:me", "--theme", "rlhf")
    fetched = invoke("fetch")
    assert fetched.exit_code == 1 and "HTTP 503" in fetched.output and "Traceback" not in fetched.output
    preview = invoke("digest", "preview", "console:me", "--json")
    digest = json_of(preview)["digest"]
    assert digest["status"] == "source_error" and digest["items"] == []
    assert digest["coverage"]["text"] == "arXiv could not be reached today, so this digest has no new papers from arXiv."
    assert json_of(preview)["rendered"].rstrip().endswith(digest["coverage"]["text"])


def _run(started: str, end: str, outcome: str = "ok") -> FetchRun:
    return FetchRun(id=None, started=started, finished=started, window_start="2026-11-19T00:00:00+00:00",
                    window_end=end, outcome=outcome, scanned={"cs.LG": 10})


def test_coverage_counts_the_fetch_window_end_as_exclusive():
    # fetch_window's window ends at the next midnight; a Nov 25 fetch never covers Nov 26.
    window = select.Window(datetime(2026, 11, 23, 9, tzinfo=UTC), "2026-W48", date(2026, 11, 23), date(2026, 12, 1))
    runs = [_run("2026-11-25T14:18:00+00:00", "2026-11-26T00:00:00+00:00")]
    later = datetime(2026, 11, 27, 12, tzinfo=UTC)  # Friday: not stale yet
    assert select.summarize_coverage(runs, window, later, ["RLHF"], 1).text.endswith("Nov 23-25.")
    failed = [*runs, _run("2026-11-26T01:35:00+00:00", "2026-11-27T00:00:00+00:00", "failed")]
    assert select.summarize_coverage(failed, window, later, ["RLHF"], 1).text == (
        "arXiv could not be reached since Thursday; this digest covers Nov 23-25 only.")


# -- why and themes --------------------------------------------------------------------------------------


def _score(theme: str, value: float) -> ThemeScore:
    return ThemeScore(theme=theme, score=value, matched=True, why=(f"{theme} seed",), terms=(theme,))


def test_item_lists_the_theme_its_why_comes_from_first():
    paper = Paper(title="Multimodal Reward Hacking", arxiv_id="2607.09492", origin="arxiv", id=1)
    scores = [_score("reasoning", 0.70), _score("rlhf", 0.857), _score("safety-policy", 0.8965)]
    (item,) = select.rank_candidates([(paper, scores)], ["rlhf", "reasoning", "safety-policy"])
    assert item.themes == ("safety-policy", "rlhf", "reasoning")
    assert item.why == ("safety-policy seed",)
    (only_rlhf,) = select.rank_candidates([(paper, scores)], ["rlhf"])  # a channel's own themes only
    assert (only_rlhf.themes, only_rlhf.why) == (("rlhf",), ("rlhf seed",))


# -- `digestbot run` as a user starts and stops it --------------------------------------------------------


def test_digestbot_run_without_tokens_stops_cleanly_on_ctrl_c(env_setup, arxiv_server):
    invoke("subscribe", "console:me", "--theme", "rlhf")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_"))}
    command = [shutil.which("digestbot") or "", "run"] if shutil.which("digestbot") else [
        sys.executable, "-m", "bot.cli_main", "run"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).parent.parent)
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "press Ctrl-C to stop" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "".join(lines)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    out = proc.stdout.read()  # type: ignore[union-attr]
    text = "".join(lines)
    assert proc.returncode == 0, text
    assert "Traceback" not in text and "Traceback" not in out
    assert "No SLACK_BOT_TOKEN or DISCORD_TOKEN set" in text and "Stopping" in text


# -- delivery failures are told to the channel; broken channels in words, tried at their next run ---------------

A, B = "slack:T1:CA", "discord:1:3"
DUE = datetime(2026, 11, 23, 9, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def clock(fixed_now):
    return Clock(fixed_now)


@pytest.fixture
def core(clock):
    from digests.service import open_core

    core = open_core(clock=clock, sync=False)
    for key in (A, B):
        add_channel(core, key)
    core.cache["rate_limiters"] = {p: RateLimiter(None, 0.0, sleep=FakeSleep()) for p in ("slack", "discord")}
    yield core
    catalog_lane(core).close()


def make(core, poster, **kw):
    return Deliverer(core, posters=lambda platform: poster, build=builder(), sleep=FakeSleep(), **kw)


def refused(key: str) -> DeliveryError:
    return DeliveryError("Slack refused the post (invalid_blocks); it will be retried", channel=key,
                         code="invalid_blocks", retry_after=None, permanent=False)


def notices(poster: RecordingPoster) -> list[str]:
    return [p.digest.empty_note or "" for p in poster.posts if p.digest.id.endswith("|failed")]


async def test_channel_is_told_once_when_retries_run_out_and_the_digest_still_goes_out(core, clock):
    poster = RecordingPoster().will(A, *[refused(A)] * 3)
    result = await make(core, poster, max_attempts=3).deliver(A, DUE)
    assert result.outcome == "retry"
    assert notices(poster) == [(
        "This week's digest could not be posted yet (Slack refused the post (invalid_blocks); it will be retried). "
        "I'll keep trying until Wed Dec 2; the admins can see the details with `digestbot status`."
    )]
    clock.now += timedelta(hours=1)
    (later,) = await make(core, poster, max_attempts=3).recover()
    assert later.outcome == "posted"
    assert poster.posted_ids(A) == [f"{A}|2026-W48|failed", f"{A}|2026-W48"]
    assert ledger.get_delivery(core, f"{A}|2026-W48").status == "done"


async def test_rate_limits_are_not_told_but_a_digest_dropped_a_week_late_is(core, clock):
    poster = RecordingPoster().will(A, rate_limited(A, 5000))  # longer than max_inline_wait: left to the sweep
    result = await make(core, poster, max_attempts=2).deliver(A, DUE)
    assert result.outcome == "retry" and notices(poster) == []
    clock.now += timedelta(days=8)
    (dropped,) = await make(core, poster).recover()
    assert dropped.outcome == "skipped" and "more than a week late" in dropped.detail
    (note,) = notices(poster)
    assert note.startswith("The digest for 2026-W48 could not be posted for a week (rate limited, retry in 5000s)")
    assert ledger.get_delivery(core, f"{A}|2026-W48").status == "skipped"
    assert poster.posted_ids(A) == [f"{A}|2026-W48|failed"]


@pytest.mark.parametrize(("code", "message", "expected"), [
    (50013, ("discord:1:3: the bot lacks a permission here (Missing Permissions, 50013); give it Send Messages "
             "and Embed Links"),
     ("the bot lacks a permission here (Missing Permissions, 50013); give it Send Messages and Embed Links")),
    ("not_in_channel", "the app is not a member of this channel (not_in_channel)",
     "the app is not a member of this channel (not_in_channel); invite the app to this channel with /invite"),
    ("50013", "discord:1:3: 50013",
     ("the platform refused to post here (50013); give the bot back its access to this channel")),
])
def test_broken_reason_is_a_sentence_with_the_problem_the_code_and_the_fix(code, message, expected):
    exc = DeliveryError(message, channel=B, code=code, retry_after=None, permanent=True)
    assert broken_sentence(B, exc) == expected


async def test_broken_channel_is_skipped_then_tried_once_at_its_next_scheduled_run(core, clock):
    poster = RecordingPoster().will(B, permanent_failure(B, "50013"))
    first = {r.channel: r for r in await make(core, poster).catch_up()}
    assert first[A].outcome == "posted" and first[B].outcome == "broken"
    broken = get_channel(core, B)
    assert broken.broken_reason.startswith("the platform refused to post here (50013);")
    assert await make(core, poster).catch_up() == []  # nothing retried in between

    status = invoke_status(core)
    assert f"BROKEN since Wed 2026-11-25 12:00 UTC: {broken.broken_reason}; next try Mon 2026-11-30" in status

    clock.now = datetime(2026, 11, 30, 9, 1, tzinfo=UTC)  # the next scheduled run; the channel was fixed
    second = {r.channel: r.outcome for r in await make(core, poster).catch_up()}
    assert second == {A: "posted", B: "posted"}
    assert get_channel(core, B).broken_reason is None
    assert poster.posted_ids(B) == [f"{B}|2026-W49"]


async def test_still_broken_channel_keeps_the_time_it_first_broke(core, clock):
    poster = RecordingPoster().will(B, permanent_failure(B, "50001"), permanent_failure(B, "50001"))
    await make(core, poster).catch_up()
    since = get_channel(core, B).broken_at
    clock.now = datetime(2026, 11, 30, 9, 1, tzinfo=UTC)
    assert {r.channel: r.outcome for r in await make(core, poster).catch_up()}[B] == "broken"
    assert get_channel(core, B).broken_at == since and poster.posted_ids(B) == []


def invoke_status(core) -> str:
    from bot.cli_run import _status_line

    return _status_line(ledger.channel_status(core, B, core.clock()))


class CountingPoster(RecordingPoster):
    """Holds every post until `gate_at` posts are in flight at once, and records the peak."""

    def __init__(self, gate_at: int) -> None:
        import asyncio

        super().__init__()
        self.current = self.peak = 0
        self.gate_at = gate_at
        self.gate = asyncio.Event()

    async def post(self, channel_key, digest):
        self.current += 1
        self.peak = max(self.peak, self.current)
        if self.current >= self.gate_at:
            self.gate.set()
        try:
            await self.gate.wait()
            return await super().post(channel_key, digest)
        finally:
            self.current -= 1


async def test_requests_in_flight_stay_bounded_across_many_channels(core):
    import asyncio

    keys = [f"slack:T1:C{n}" for n in range(40)]
    for key in keys:
        add_channel(core, key)
    poster = CountingPoster(gate_at=3)  # deadlocks (and times out) if fewer than 3 may be in flight
    deliveries = make(core, poster, max_in_flight=3).deliver_many([(k, DUE) for k in keys], workers=32)
    results = await asyncio.wait_for(deliveries, 60)
    assert {r.outcome for r in results} == {"posted"} and len(poster.posts) == 40
    assert poster.peak == 3


def test_digest_caught_up_at_start_covers_the_fetch_made_at_start(arxiv_server):
    from digests.service import open_core

    created = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="seconds")
    add_channel(open_core(sync=False), "console:me", created_at=created)  # subscribed a month ago; bot was down
    result = invoke("run", "--once")
    assert result.exit_code == 0 and "console:me: posted" in result.output
    assert "2 new papers in RLHF and preference learning; scanned 50 cs.AI/cs.CL/cs.CR/cs.LG papers" in result.output
    assert "No arXiv fetch has run" not in result.output


async def test_in_place_retry_checks_the_platform_first_when_a_post_may_have_gone_through(core):
    poster = RecordingPoster().will(A, "lost_reply")  # Slack accepted it; the answer never came back
    result = await make(core, poster).deliver(A, DUE)
    assert result.outcome == "recovered"
    assert poster.posted_ids(A) == [f"{A}|2026-W48"] and poster.finds == [(A, f"{A}|2026-W48")]
    assert ledger.get_delivery(core, f"{A}|2026-W48").status == "done"


async def test_in_place_retry_after_a_429_posts_without_asking(core):
    poster = RecordingPoster().will(A, rate_limited(A, 2))
    assert (await make(core, poster).deliver(A, DUE)).outcome == "posted"
    assert poster.finds == [] and poster.posted_ids(A) == [f"{A}|2026-W48"]


class HistoryDown(RecordingPoster):
    """A platform whose history search (find_posted) fails for one channel."""

    def __init__(self, channel: str, error: DeliveryError) -> None:
        super().__init__()
        self.broken_find = (channel, error)

    async def find_posted(self, channel_key, digest_id):
        if channel_key == self.broken_find[0]:
            raise self.broken_find[1]
        return await super().find_posted(channel_key, digest_id)


async def test_a_failing_history_search_neither_posts_blind_nor_sinks_the_catch_up(core, fixed_now):
    ledger.begin(core, builder()(core, A, DUE), fixed_now, count_attempt=True)  # crashed mid-post last time
    poster = HistoryDown(A, rate_limited(A, 30))
    results = {r.channel: r.outcome for r in await make(core, poster).catch_up()}
    assert results == {A: "retry", B: "posted"}
    assert poster.posted_ids(A) == []  # not posted blind: it may already be in the channel
    row = ledger.get_delivery(core, f"{A}|2026-W48")
    assert row.status == "pending" and row.retry_at == "2026-11-25T12:00:30+00:00"


async def test_runner_warns_when_a_scheduled_digest_cannot_go_out(core, caplog):
    import logging

    from bot.runner import Platforms, Runner

    runner = Runner(core, Platforms(), say=lambda text: None, batch_delay=0)  # no SLACK_BOT_TOKEN, no DISCORD_TOKEN
    try:
        with caplog.at_level(logging.INFO, logger="bot.runner"):
            result = await runner.run_digest(A)
    finally:
        await runner.stop()
    assert result.outcome == "unavailable"
    (record,) = [r for r in caplog.records if r.getMessage().startswith(f"digest {A}")]
    assert record.levelno == logging.WARNING and "SLACK_BOT_TOKEN" in record.getMessage()


async def test_digest_jobs_whose_batch_failed_run_again_at_the_next_sweep(core, caplog):
    from bot.posting import register_poster
    from bot.runner import Platforms, Runner

    poster = RecordingPoster(platform="console")
    calls = []

    def flaky_factory(core):  # e.g. a poster that fails to initialise once
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("poster not ready")
        return poster

    add_channel(core, "console:x")
    previous = register_poster("console", flaky_factory)
    runner = Runner(core, Platforms(), say=lambda text: None, batch_delay=0)
    try:
        assert await runner.run_digest("console:x") is None
        assert "they run again at the next sweep" in caplog.text and poster.posts == []
        await runner.sweep()
        assert poster.posted_ids("console:x") == ["console:x|2026-W48"]
        await runner.sweep()
        assert len(poster.posts) == 1
    finally:
        register_poster("console", previous)
        await runner.stop()


@pytest.mark.parametrize("reason", ["interrupted", "KeyboardInterrupt: ", "CancelledError: "])
def test_coverage_of_a_fetch_we_stopped_does_not_blame_arxiv(reason):
    window = select.Window(datetime(2026, 11, 23, 9, tzinfo=UTC), "2026-W48", date(2026, 11, 23), date(2026, 11, 26))
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    stopped = FetchRun(id=None, started="2026-11-24T01:35:00+00:00", finished=None, window_start="2026-11-17",
                       window_end="2026-11-25T00:00:00+00:00", outcome="failed", reason=reason)
    cov = select.summarize_coverage([stopped], window, now, ["RLHF"], 0)
    assert cov.status == "failed"
    assert cov.text == ("The last arXiv fetch was stopped on Tuesday before it finished, so this digest has no new "
                        "papers from arXiv.")
    refused = FetchRun(id=None, started="2026-11-25T01:35:00+00:00", finished=None, window_start="2026-11-18",
                       window_end="2026-11-26T00:00:00+00:00", outcome="failed", reason="arXiv is busy (HTTP 503)")
    both = select.summarize_coverage([stopped, refused], window, now, ["RLHF"], 0)
    assert both.text == "arXiv could not be reached since Tuesday, so this digest has no new papers from arXiv."


class _HeldArxiv(http.server.BaseHTTPRequestHandler):
    """Holds every request until the test releases it (an arXiv that is slow to answer)."""

    arrived: threading.Event
    release: threading.Event

    def do_GET(self) -> None:
        self.arrived.set()
        self.release.wait(120)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_ctrl_c_during_an_arxiv_fetch_stops_without_waiting_for_arxiv(env_setup, monkeypatch):
    import sqlite3

    handler = type("Held", (_HeldArxiv,), {"arrived": threading.Event(), "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env_setup.mkdir(parents=True, exist_ok=True)
    (env_setup / "digestbot.toml").write_text("[arxiv]\ndelay_seconds = 0\nretries = 1\n")
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_URL", f"http://127.0.0.1:{server.server_address[1]}/api/query")
    invoke("subscribe", "console:me", "--theme", "rlhf")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_"))}
    command = [shutil.which("digestbot") or "", "run"] if shutil.which("digestbot") else [
        sys.executable, "-m", "bot.cli_main", "run"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert handler.arrived.wait(60), "the start-up fetch never reached arXiv"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # arXiv still holds the request: stopping must not wait for it
    finally:
        handler.release.set()
        if proc.poll() is None:
            proc.kill()
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0 and "Traceback" not in err, err
    rows = sqlite3.connect(env_setup / "digestbot.db").execute("SELECT outcome, reason FROM fetch_runs").fetchall()
    assert rows == [("failed", "interrupted")]


def test_a_failed_or_interrupted_fetch_is_tried_again_at_start(core, fixed_now):
    from bot.runner import is_fetch_due
    from digests.fetch import record_run
    from digests.schedule import Calendar

    def run(started: str, outcome: str, reason: str | None = None) -> None:
        record_run(core, FetchRun(id=None, started=started, finished=started, window_start="2026-11-18",
                                  window_end="2026-11-25", outcome=outcome, reason=reason))

    run("2026-11-24T01:35:00+00:00", "ok")
    run("2026-11-25T01:35:00+00:00", "failed", "interrupted")  # after Tuesday's 20:30 ET fetch time
    assert is_fetch_due(core, fixed_now, Calendar())
    run("2026-11-25T02:00:00+00:00", "empty")
    assert not is_fetch_due(core, fixed_now, Calendar())


async def test_sweep_retries_a_failed_fetch_hourly_until_one_works(core, clock):
    from bot.runner import Platforms, Runner
    from digests.fetch import record_run

    outcomes = ["failed", "ok"]
    fetched = []

    def fetch(core, now):  # records its run the way fetch_window does
        fetched.append(now)
        record_run(core, FetchRun(id=None, started=now.isoformat(), finished=now.isoformat(), window_start="2026-11-18",
                                  window_end="2026-11-26", outcome=outcomes.pop(0), reason="arXiv is busy (HTTP 503)"))

    fetch(core, clock.now)  # Wednesday 12:00 UTC: after Tuesday's 20:30 ET fetch time, and it failed
    runner = Runner(core, Platforms(), fetch=fetch, say=lambda text: None)
    try:
        await runner.sweep()
        assert len(fetched) == 1  # the last try is not an hour old yet
        clock.now += timedelta(hours=1)
        await runner.sweep()
        await asyncio.gather(*runner.tasks)
        assert len(fetched) == 2  # retried, and it worked
        clock.now += timedelta(hours=2)
        await runner.sweep()
        assert len(fetched) == 2 and not [t for t in runner.tasks if not t.done()]
    finally:
        await runner.stop()


def test_status_names_the_days_a_fetch_covered_not_its_exclusive_end(fresh_core):
    from digests.fetch import record_run

    record_run(fresh_core, FetchRun(id=None, started="2026-11-25T14:18:00+00:00", finished=None,
                                    window_start="2026-11-19T00:00:00+00:00", window_end="2026-11-26T00:00:00+00:00",
                                    outcome="ok", papers=50))
    assert "50 papers  days 2026-11-19 to 2026-11-25" in invoke("status").output
