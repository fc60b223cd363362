"""Pure selection with an explicit `now`: windows, ranking, updates, classics, coverage lines."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from digests import select
from digests.models import Channel, FetchRun, Paper, Schedule, Theme, ThemeScore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # Wednesday of 2026-W48
RLHF = Theme(name="rlhf", label="RLHF", description="", exemplars=("Deep reinforcement learning from human",))
OVERSIGHT = Theme(name="oversight", label="Oversight", description="")


def paper(arxiv_id: str, pid: int, title: str = "", abstract: str = "", **kw) -> Paper:
    return Paper(title=title or f"Paper {arxiv_id}", abstract=abstract, arxiv_id=arxiv_id, id=pid,
                 origin=kw.pop("origin", "arxiv"), **kw)


def score(theme: str, value: float, matched: bool = True) -> ThemeScore:
    return ThemeScore(theme=theme, score=value, matched=matched, why=(f"seed for {theme}",), terms=(theme,))


def run(started: str, outcome: str = "ok", start: str = "2026-11-18", end: str | None = None, **kw) -> FetchRun:
    return FetchRun(id=None, started=started, finished=started, window_start=f"{start}T00:00:00+00:00",
                    window_end=end or started, outcome=outcome, **kw)


def window(since: str = "2026-11-23", until: str = "2026-11-26") -> select.Window:
    return select.Window(scheduled=datetime(2026, 11, 23, 9, tzinfo=UTC), week="2026-W48",
                         since=date.fromisoformat(since), until=date.fromisoformat(until))


# -- slot, week, window ------------------------------------------------------------------------

def test_scheduled_for_is_latest_slot_at_or_before_now():
    slot = select.scheduled_for(Schedule(0, "09:00", "UTC"), NOW)
    assert slot.isoformat() == "2026-11-23T09:00:00+00:00"
    on_time = select.scheduled_for(Schedule(2, "12:00", "UTC"), NOW)
    assert on_time.isoformat() == "2026-11-25T12:00:00+00:00"
    just_before = select.scheduled_for(Schedule(2, "12:01", "UTC"), NOW)
    assert just_before.date() == date(2026, 11, 18)


def test_digest_week_uses_the_channel_zone():
    # Monday 09:00 in Auckland is Sunday 20:00 UTC: the slot belongs to the Auckland Monday's week.
    now = datetime(2026, 11, 29, 20, 30, tzinfo=UTC)
    assert select.digest_week(Schedule(0, "09:00", "Pacific/Auckland"), now) == "2026-W49"
    assert select.digest_week(Schedule(0, "09:00", "UTC"), now) == "2026-W48"


def test_scheduled_for_across_dst_end_keeps_local_time():
    # America/New_York leaves DST on 2026-11-01; the slot stays at 09:00 local.
    now = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    slot = select.scheduled_for(Schedule(0, "09:00", "America/New_York"), now)
    assert (slot.hour, slot.utcoffset().total_seconds() / 3600) == (9, -5)


def test_new_subscription_window_starts_in_its_own_week():
    channel = Channel(key="console:a", themes=("rlhf",), created_at="2026-11-25T10:00:00+00:00")
    win = select.digest_window(channel, NOW, previous=None)
    assert (win.since, win.until, win.week) == (date(2026, 11, 23), date(2026, 11, 26), "2026-W48")
    old = Channel(key="console:a", themes=("rlhf",), created_at="2026-01-05T10:00:00+00:00")
    assert select.digest_window(old, NOW, previous=None).since == date(2026, 11, 16)


def test_window_runs_since_previous_digest():
    channel = Channel(key="console:a", themes=("rlhf",), created_at="2026-01-05T10:00:00+00:00")
    previous = datetime(2026, 11, 9, 9, 0, tzinfo=UTC)
    assert select.digest_window(channel, NOW, previous).since == date(2026, 11, 9)


# -- new papers ----------------------------------------------------------------------------------

def test_rank_new_excludes_already_sent_versionless():
    candidates = [(paper("2611.00001", 1), [score("rlhf", 0.9)]), (paper("2611.00002", 2), [score("rlhf", 0.5)])]
    items = select.rank_new(candidates, ("rlhf",), sent={"2611.00001": 1})
    assert [i.paper.arxiv_id for i in items] == ["2611.00002"]


def test_rank_new_paper_matching_two_themes_appears_once_with_both():
    p = paper("2611.00003", 3)
    candidates = [(p, [score("oversight", 0.4), score("rlhf", 0.7)]), (paper("2611.00004", 4), [score("rlhf", 0.6)])]
    items = select.rank_new(candidates, ("rlhf", "oversight"), sent={})
    assert [i.paper.arxiv_id for i in items] == ["2611.00003", "2611.00004"]
    assert items[0].themes == ("rlhf", "oversight")
    assert items[0].score == 0.7 and items[0].why == ("seed for rlhf",)


def test_rank_new_ignores_unmatched_and_unsubscribed_themes():
    candidates = [(paper("2611.00005", 5), [score("rlhf", 0.9, matched=False)]),
                  (paper("2611.00006", 6), [score("interpretability", 0.9)])]
    assert select.rank_new(candidates, ("rlhf",), sent={}) == []


def test_rank_new_ties_broken_by_newest_then_id():
    a = paper("2611.00010", 10, announced="2026-11-23")
    b = paper("2611.00011", 11, announced="2026-11-24")
    c = paper("2611.00009", 9, announced="2026-11-24")
    items = select.rank_new([(p, [score("rlhf", 0.5)]) for p in (a, b, c)], ("rlhf",), sent={})
    assert [i.paper.arxiv_id for i in items] == ["2611.00009", "2611.00011", "2611.00010"]


def test_select_updated_only_for_sent_papers_with_newer_version():
    revisions = [(paper("2611.00001", 1, version=2), 2), (paper("2611.00002", 2, version=3), 3),
                 (paper("2611.00007", 7, version=2), 2)]
    updates = select.select_updated(revisions, sent={"2611.00001": 1, "2611.00002": 3}, limit=5)
    assert [(u.paper.arxiv_id, u.version) for u in updates] == [("2611.00001", 2)]


def test_select_updated_capped():
    revisions = [(paper(f"2611.0000{i}", i), 2) for i in range(1, 8)]
    sent = {f"2611.0000{i}": 1 for i in range(1, 8)}
    assert len(select.select_updated(revisions, sent, limit=3)) == 3


# -- classics --------------------------------------------------------------------------------------

SEEDS = [
    paper("1", 101, title="Seed A", origin="seed", themes=("rlhf",)),
    paper("2", 102, title="Deep reinforcement learning from human preferences", origin="seed", themes=("rlhf",)),
    paper("3", 103, title="Seed O", origin="seed", themes=("oversight",)),
    paper("4", 104, title="Seed both", origin="seed", themes=("oversight", "rlhf")),
    paper("5", 105, title="Unrelated", origin="seed", themes=("interpretability",)),
]


def test_order_classics_round_robin_exemplar_first_no_duplicates():
    order = select.order_classics(SEEDS, [RLHF, OVERSIGHT])
    assert [p.id for p in order] == [102, 103, 101, 104]


def test_pick_classic_rotates_without_repeats_then_restarts():
    rotation = select.order_classics(SEEDS, [RLHF, OVERSIGHT])
    shown: dict[int, str] = {}
    picks = []
    for week in range(6):
        pick = select.pick_classic(rotation, shown)
        picks.append(pick.id)
        shown[pick.id] = f"2026-11-{10 + week:02d}T09:00:00+00:00"  # what the ledger records on delivery
    assert picks[:4] == [102, 103, 101, 104]
    assert picks[4:] == [102, 103]


def test_pick_classic_none_without_seeds():
    assert select.pick_classic([], {}) is None


def test_nearest_papers_prefers_shared_terms():
    classic = paper("x", 1, title="Reward model overoptimization", abstract="reward hacking of learned reward models")
    close = paper("2611.1", 2, title="Scaling laws for reward model overoptimization", abstract="reward hacking")
    far = paper("2611.2", 3, title="Protein folding", abstract="structures of proteins")
    assert select.nearest_papers(classic, [far, close]) == [close]


# -- coverage -----------------------------------------------------------------------------------------

def test_coverage_empty_week_said_plainly():
    runs = [run("2026-11-24T01:00:00+00:00", scanned={"cs.CL": 704, "cs.LG": 500})]
    cov = select.summarize_coverage(runs, window("2026-11-16", "2026-11-23"), NOW, ["RLHF"], found=0)
    assert cov.status == "empty"
    assert cov.text == "No new papers in RLHF this week; scanned 1,204 cs.CL/cs.LG papers from arXiv, Nov 16-22."


def test_coverage_ok_counts_overlapping_runs_once():
    runs = [run("2026-11-23T01:00:00+00:00", start="2026-11-16", scanned={"cs.CL": 1000}),
            run("2026-11-24T01:00:00+00:00", start="2026-11-17", scanned={"cs.CL": 1100}),
            run("2026-11-25T01:00:00+00:00", start="2026-11-18", scanned={"cs.CL": 1200})]
    cov = select.summarize_coverage(runs, window(), NOW, ["RLHF", "Oversight"], found=3)
    assert cov.status == "ok"
    assert cov.text == "3 new papers in RLHF, Oversight; scanned 1,200 cs.CL papers from arXiv, Nov 23-25."
    capped = select.summarize_coverage(runs, window(), NOW, ["RLHF"], found=12, shown=5)
    assert capped.text.startswith("The best 5 of 12 new papers in RLHF; scanned 1,200")


def test_coverage_failed_fetch_said_as_such():
    runs = [run("2026-11-23T01:00:00+00:00", end="2026-11-23T01:00:00+00:00", scanned={"cs.CL": 90}),
            run("2026-11-24T01:00:00+00:00", "failed", reason="connect timeout"),
            run("2026-11-25T01:00:00+00:00", "failed", reason="connect timeout")]
    cov = select.summarize_coverage(runs, window(), NOW, ["RLHF"], found=1)
    assert cov.status == "failed"
    assert cov.text == "arXiv could not be reached since Tuesday; this digest covers Nov 23 only."
    assert select.digest_status(cov, []) == "source_error"


def test_coverage_failed_with_no_good_run():
    runs = [run("2026-11-24T01:00:00+00:00", "failed")]
    cov = select.summarize_coverage(runs, window(), NOW, ["RLHF"], found=0)
    assert cov.text == "arXiv could not be reached since Tuesday, so this digest has no new papers from arXiv."


def test_coverage_stale_fetch():
    runs = [run("2026-11-17T01:00:00+00:00", start="2026-11-10", scanned={"cs.LG": 10})]
    cov = select.summarize_coverage(runs, window("2026-11-16"), NOW, ["RLHF"], found=0)
    assert cov.status == "stale"
    assert cov.text == "The last arXiv fetch was on Nov 17; this digest covers Nov 16-17 only."


def test_coverage_no_fetch_at_all():
    cov = select.summarize_coverage([], window(), NOW, ["RLHF"], found=0)
    assert cov.status == "none"
    assert cov.text == "No arXiv fetch has run since Nov 23, so this digest has no new papers from arXiv."
    assert select.digest_status(cov, []) == "source_error"


@pytest.mark.parametrize(("start", "end", "text"), [
    (date(2026, 11, 16), date(2026, 11, 22), "Nov 16-22"),
    (date(2026, 11, 30), date(2026, 12, 6), "Nov 30-Dec 6"),
    (date(2026, 11, 16), date(2026, 11, 16), "Nov 16"),
])
def test_span_formats(start, end, text):
    assert select._span(start, end) == text


def test_empty_note_only_where_the_coverage_line_does_not_say_it():
    stale = select.summarize_coverage([run("2026-11-17T01:00:00+00:00")], window("2026-11-16"), NOW, ["RLHF"], 0)
    assert select.empty_note(stale, [], ["RLHF"]) == "No new papers in RLHF in the days covered."
    empty = select.summarize_coverage([run("2026-11-25T01:00:00+00:00")], window(), NOW, ["RLHF"], 0)
    assert select.empty_note(empty, [], ["RLHF"]) is None


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Europe/Berlin", "Pacific/Auckland"])
@pytest.mark.parametrize("now", [datetime(2026, 3, 8, 7, 30, tzinfo=UTC),   # US spring-forward day
                                 datetime(2026, 3, 29, 0, 59, tzinfo=UTC),  # EU spring-forward day
                                 datetime(2026, 11, 1, 6, 30, tzinfo=UTC),  # US fall-back day
                                 NOW])
@pytest.mark.parametrize("weekday", [0, 6])
def test_scheduled_for_agrees_with_the_scheduler(tz, now, weekday):
    from digests.schedule import previous_digest_run

    schedule = Schedule(weekday, "02:30", tz)
    assert select.scheduled_for(schedule, now) == previous_digest_run(schedule, now)


def test_take_unsent_caps_and_counts():
    items = select.rank_candidates([(paper(f"2611.0000{i}", i), [score("rlhf", i / 10)]) for i in range(1, 8)], ("rlhf",))
    ids = frozenset(i.paper.arxiv_id for i in items)
    chosen, found = select.take_unsent(items, ids, {"2611.00007": 1, "2611.00005": 1, "2401.00001": 2}, limit=3)
    assert [i.paper.arxiv_id for i in chosen] == ["2611.00006", "2611.00004", "2611.00003"]
    assert found == 5


def test_order_classics_includes_untagged_exemplars_by_title_or_opening_words():
    theme = Theme(name="rlhf", label="RLHF", description="",
                  exemplars=("We apply preference modeling", "Learning to summarize"))
    seeds = [paper("a", 1, title="Tagged", origin="seed", themes=("rlhf",)),
             paper("b", 2, title="learning  to Summarize from human feedback", origin="seed"),
             Paper(title=None, abstract="We apply preference modeling and RLHF ...", id=3, origin="seed"),
             paper("d", 4, title="Other", origin="seed")]
    assert [p.id for p in select.order_classics(seeds, [theme])] == [3, 2, 1]
