"""Subscriptions on a real SQLite file: keys, themes, schedules, pause, broken marks, config channels."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from digests import channels
from digests.errors import ChannelError, ConfigError, UnknownThemeError
from digests.models import Schedule, Theme
from digests.service import open_core
from digests.settings import load_settings

THEMES = (
    Theme(name="rlhf", label="RLHF", description="Learning from human feedback"),
    Theme(name="oversight", label="Oversight", description="Scalable oversight"),
    Theme(name="interpretability", label="Interpretability", description="Mechanistic interpretability"),
)


class Clock:
    """A settable clock: tests move time explicitly."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(fixed_now):
    return Clock(fixed_now)


@pytest.fixture
def core(clock):
    core = open_core(load_settings(), clock=clock, sync=False)
    core.themes = THEMES
    return core


def config_core(home, clock, text: str):
    home.mkdir(parents=True, exist_ok=True)
    (home / "digestbot.toml").write_text(text, encoding="utf-8")
    core = open_core(load_settings(), clock=clock, sync=False)
    core.themes = THEMES
    return core


@pytest.mark.parametrize("key", ["slack:T0001:C2147483705", "discord:1234567890:987654321", "discord:dm:42",
                                 "console:lab"])
def test_parse_channel_key_accepts_platform_keys(key):
    assert str(channels.parse_channel_key(key)) == key


@pytest.mark.parametrize("key", ["", "slack:T1", "slack:T1:C1:x", "discord:abc:1", "irc:x:y", "console:", "C123"])
def test_parse_channel_key_rejects_others_with_the_formats(key):
    with pytest.raises(ChannelError) as err:
        channels.parse_channel_key(key)
    assert "slack:<team>:<channel>, discord:<guild>:<channel> or console:<name>" in str(err.value)


def test_subscribe_new_channel_gets_defaults_and_stores_only_overrides(core, fixed_now):
    channel = channels.subscribe(core, "slack:T1:C1", ["rlhf", "oversight"], by="cli")
    assert channel.themes == ("rlhf", "oversight")
    assert channel.schedule == Schedule(0, "09:00", "UTC")
    assert (channel.size_new, channel.size_classic, channel.source) == (5, 1, "cli")
    assert channel.created_at == fixed_now.isoformat()
    row = core.db["channels"].get("slack:T1:C1")
    assert (row["weekday"], row["time"], row["tz"], row["size_new"], row["size_classic"]) == (None,) * 5


def test_subscribe_with_zone_uses_it_for_monday_nine(core):
    channel = channels.subscribe(core, "console:berlin", "rlhf", tz="Europe/Berlin")
    assert channel.schedule == Schedule(0, "09:00", "Europe/Berlin")


def test_subscribe_adds_themes_once(core):
    channels.subscribe(core, "console:a", ["rlhf"])
    channel = channels.subscribe(core, "console:a", ["oversight", "RLHF"])
    assert channel.themes == ("rlhf", "oversight")


def test_subscribe_unknown_theme_lists_the_themes(core):
    with pytest.raises(UnknownThemeError) as err:
        channels.subscribe(core, "console:a", ["rlhf", "cooking"])
    assert "cooking" in str(err.value)
    for name in ("rlhf", "oversight", "interpretability"):
        assert name in str(err.value)
    assert channels.get_channel(core, "console:a") is None
    assert pickle.loads(pickle.dumps(err.value)).theme == "cooking"


def test_subscribe_needs_a_theme(core):
    with pytest.raises(UnknownThemeError, match="at least one theme"):
        channels.subscribe(core, "console:a", [])


def test_subscribe_bad_zone(core):
    with pytest.raises(ChannelError, match="IANA"):
        channels.subscribe(core, "console:a", "rlhf", tz="Mars/Olympus")


def test_unsubscribe_last_theme_pauses_and_keeps_the_row(core):
    channels.subscribe(core, "console:a", ["rlhf", "oversight"])
    channels.set_schedule(core, "console:a", "fri", "16:30", "Asia/Tokyo")
    assert channels.unsubscribe(core, "console:a", "rlhf").themes == ("oversight",)
    paused = channels.unsubscribe(core, "console:a", "oversight")
    assert paused.paused and paused.themes == ()
    assert paused.schedule == Schedule(4, "16:30", "Asia/Tokyo")
    assert [c.key for c in channels.list_channels(core)] == ["console:a"]


def test_unsubscribe_all_and_unknown_theme(core):
    channels.subscribe(core, "console:a", ["rlhf", "oversight"])
    with pytest.raises(UnknownThemeError, match="subscribed to rlhf, oversight"):
        channels.unsubscribe(core, "console:a", "interpretability")
    assert channels.unsubscribe(core, "console:a").paused


def test_unsubscribe_unknown_channel_names_subscribe(core):
    with pytest.raises(ChannelError, match="digestbot subscribe console:nobody --theme"):
        channels.unsubscribe(core, "console:nobody")


def test_resubscribing_a_paused_channel_restarts_its_current_week(core, clock, fixed_now):
    channels.subscribe(core, "console:a", "rlhf")
    channels.unsubscribe(core, "console:a")
    clock.now = fixed_now + timedelta(days=60)
    channel = channels.subscribe(core, "console:a", "oversight")
    assert channel.created_at == clock.now.isoformat()
    clock.now += timedelta(days=1)
    assert channels.subscribe(core, "console:a", "rlhf").created_at == channel.created_at


@pytest.mark.parametrize(("day", "expected"), [("mon", 0), ("Tuesday", 1), ("wed", 2), ("6", 6), (3, 3)])
def test_set_schedule_weekday_names(core, day, expected):
    channels.subscribe(core, "console:a", "rlhf")
    assert channels.set_schedule(core, "console:a", day, "7:05", "UTC").schedule == Schedule(expected, "07:05", "UTC")


@pytest.mark.parametrize(("day", "time", "tz", "message"), [
    ("funday", "09:00", "UTC", "not a weekday"),
    ("mon", "25:00", "UTC", "not a time"),
    ("mon", "9am", "UTC", "not a time"),
    ("mon", "09:00", "Europe/Nowhere", "not a time zone"),
    ("mon", "09:00", "../etc/passwd", "not a time zone"),
])
def test_set_schedule_validation(core, day, time, tz, message):
    channels.subscribe(core, "console:a", "rlhf")
    with pytest.raises(ChannelError, match=message):
        channels.set_schedule(core, "console:a", day, time, tz)


def test_set_schedule_keeps_unset_parts(core):
    channels.subscribe(core, "console:a", "rlhf", tz="America/New_York")
    channel = channels.set_schedule(core, "console:a", time="08:00")
    assert channel.schedule == Schedule(0, "08:00", "America/New_York")


def test_set_size_bounds(core):
    channels.subscribe(core, "console:a", "rlhf")
    assert (channels.set_size(core, "console:a", 3, 0).size_new, channels.get_channel(core, "console:a").size_classic) \
        == (3, 0)
    with pytest.raises(ChannelError, match="from 1 to 20"):
        channels.set_size(core, "console:a", 50)


def test_mark_and_clear_broken(core, fixed_now):
    channels.subscribe(core, "slack:T1:C1", "rlhf")
    broken = channels.mark_broken(core, "slack:T1:C1", "not_in_channel")
    assert (broken.broken_reason, broken.broken_at) == ("not_in_channel", fixed_now.isoformat())
    assert channels.clear_broken(core, "slack:T1:C1").broken_reason is None


# -- config file channels ----------------------------------------------------------------------------------

CONFIG = """
[[channels]]
key = "slack:T1:C1"
themes = ["rlhf", "oversight"]
day = "thu"
time = "14:00"
tz = "Europe/Berlin"
size = 3
"""


def test_config_channels_applied_on_open(env_setup, clock):
    core = config_core(env_setup, clock, CONFIG)
    assert channels.apply_config_channels(core) == ["slack:T1:C1"]
    channel = channels.get_channel(core, "slack:T1:C1")
    assert channel.themes == ("rlhf", "oversight")
    assert channel.schedule == Schedule(3, "14:00", "Europe/Berlin")
    assert (channel.size_new, channel.source) == (3, "config")


def test_config_applied_again_only_when_the_entry_changes(env_setup, clock):
    core = config_core(env_setup, clock, CONFIG)
    channels.apply_config_channels(core)
    channels.unsubscribe(core, "slack:T1:C1", "oversight", by="chat")
    channels.set_schedule(core, "slack:T1:C1", "mon", "10:00")
    # A restart with the same file keeps the chat changes ...
    assert channels.apply_config_channels(core) == []
    kept = channels.get_channel(core, "slack:T1:C1")
    assert (kept.themes, kept.schedule.weekday, kept.source) == (("rlhf",), 0, "chat")
    # ... and editing the file's entry wins again.
    core = config_core(env_setup, clock, CONFIG.replace('time = "14:00"', 'time = "15:00"'))
    assert channels.apply_config_channels(core) == ["slack:T1:C1"]
    again = channels.get_channel(core, "slack:T1:C1")
    assert (again.themes, again.schedule, again.source) == (("rlhf", "oversight"), Schedule(3, "15:00", "Europe/Berlin"),
                                                            "config")


def test_config_entry_removed_from_file_leaves_channel(env_setup, clock):
    core = config_core(env_setup, clock, CONFIG)
    channels.apply_config_channels(core)
    core = config_core(env_setup, clock, "")
    channels.apply_config_channels(core)
    assert channels.get_channel(core, "slack:T1:C1").themes == ("rlhf", "oversight")


@pytest.mark.parametrize(("entry", "message"), [
    ('key = "slack:T1"\nthemes = ["rlhf"]', r"entry 1 \(slack:T1\)"),
    ('key = "console:x"\nthemes = ["cooking"]', "cooking"),
    ('key = "console:x"\nthemes = ["rlhf"]\ntz = "Nowhere/City"', "time zone"),
    ('key = "console:x"\nthemes = ["rlhf"]\nsize = 0', "from 1 to 20"),
    ('themes = ["rlhf"]', "needs a key"),
])
def test_config_channel_errors_name_the_entry(env_setup, clock, entry, message):
    core = config_core(env_setup, clock, f"[[channels]]\n{entry}\n")
    with pytest.raises(ConfigError, match=message):
        channels.apply_config_channels(core)


def test_open_core_applies_config_channels(env_setup, clock):
    env_setup.mkdir(parents=True, exist_ok=True)
    (env_setup / "digestbot.toml").write_text(CONFIG.replace('"rlhf", "oversight"', '"rlhf"'), encoding="utf-8")
    core = open_core(load_settings(), clock=clock)
    assert channels.get_channel(core, "slack:T1:C1").themes == ("rlhf",)


def test_channel_errors_round_trip_pickle():
    err = ChannelError("x", channel="console:a")
    assert pickle.loads(pickle.dumps(err)).channel == "console:a"


def test_created_at_parses(core):
    channel = channels.subscribe(core, "console:a", "rlhf")
    assert channels.subscribed_since(channel) == datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_changes_refresh_a_running_scheduler(core):
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from digests.schedule import register_jobs

    async def job(*args):
        return None

    scheduler = AsyncIOScheduler()  # never started: jobs stay pending, nothing runs
    register_jobs(scheduler, core, on_fetch=job, on_digest=job)

    def digest_jobs():
        return sorted(j.id for j in scheduler.get_jobs() if j.id.startswith("digest:"))

    channels.subscribe(core, "console:a", "rlhf")
    assert digest_jobs() == ["digest:console:a"]
    channels.unsubscribe(core, "console:a")
    assert digest_jobs() == []
