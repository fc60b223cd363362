"""Subscription and digest commands: `subscribe`, `unsubscribe`, `channels`, `digest preview`.

`digest send` and `status` belong to the delivery module (bot/cli_run.py) and are attached here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from .cli_common import friendly_errors, get_core, json_option, print_json

FORMATS = ("text", "slack", "discord")


@click.command()
@click.argument("channel")
@click.option("--theme", "-t", "themes", multiple=True, required=True, help="Theme to follow; repeat for more.")
@click.option("--day", help="Weekday the digest is posted: mon..sun (default mon).")
@click.option("--time", "time_", help="Local time, 24-hour HH:MM (default 09:00).")
@click.option("--tz", help="IANA time zone, e.g. Europe/Berlin (default UTC).")
@json_option
@friendly_errors
def subscribe(channel: str, themes: tuple[str, ...], day: str | None, time_: str | None, tz: str | None,
              as_json: bool) -> None:
    """Subscribe a channel to one or more themes; the first digest covers the current week.

    CHANNEL is slack:<team>:<channel>, discord:<guild>:<channel> or
    console:<name>. Themes are added to the ones the channel already has.
    A new channel gets its digest on Mondays at 09:00 in --tz (else UTC)
    with 5 new papers and 1 classic.

    \b
    Example:
        digestbot subscribe slack:T0001:C2147483705 --theme rlhf --theme oversight
        digestbot subscribe console:me --theme rlhf --day thu --time 14:30 --tz Europe/Berlin
    """
    from digests import channels as subs

    weekday = subs.parse_weekday(day) if day else None
    local_time = subs.parse_time(time_) if time_ else None
    core = get_core()
    result = subs.subscribe(core, channel, themes, tz=tz, by="cli")
    if weekday is not None or local_time is not None:
        result = subs.set_schedule(core, channel, weekday, local_time, tz, by="cli")
    if as_json:
        print_json(subs.channel_to_dict(result))
        return
    click.echo(f"Subscribed {result.key} to {', '.join(result.themes)}.")
    click.echo(f"Digest: {subs.describe_schedule(result)}.")


@click.command()
@click.argument("channel")
@click.option("--theme", "-t", help="Theme to drop (default: all; the channel is paused, not deleted).")
@json_option
@friendly_errors
def unsubscribe(channel: str, theme: str | None, as_json: bool) -> None:
    """Drop one theme from a channel, or all of them.

    A channel left without themes is paused: its schedule and history are
    kept, and `digestbot subscribe` resumes it.

    \b
    Example:
        digestbot unsubscribe slack:T0001:C2147483705 --theme oversight
        digestbot unsubscribe console:me
    """
    from digests import channels as subs

    result = subs.unsubscribe(get_core(), channel, theme.strip().lower() if theme else None, by="cli")
    if as_json:
        print_json(subs.channel_to_dict(result))
    elif result.paused:
        click.echo(f"{result.key} is paused: no themes left. Resume with: digestbot subscribe {result.key} --theme <theme>")
    else:
        click.echo(f"Unsubscribed {result.key} from {theme}; still following {', '.join(result.themes)}.")


@click.command()
@json_option
@friendly_errors
def channels(as_json: bool) -> None:
    """List every channel with its themes, schedule, size and state.

    \b
    Example:
        digestbot channels
        digestbot channels --json | jq '.[] | select(.paused | not) | .key'
    """
    from digests import channels as subs

    found = subs.list_channels(get_core())
    if as_json:
        print_json([subs.channel_to_dict(c) for c in found])
        return
    if not found:
        click.echo("No channels yet. Subscribe one with: digestbot subscribe console:me --theme rlhf")
        return
    for channel in found:
        click.echo(_channel_line(channel, subs))


def _channel_line(channel: Any, subs: Any) -> str:
    if channel.broken_reason:
        state = f"BROKEN ({channel.broken_reason})"
    else:
        state = "paused" if channel.paused else "active"
    themes = ", ".join(channel.themes) or "-"
    return f"{channel.key}  [{state}]  {themes}  {subs.describe_schedule(channel)}  ({channel.source})"


@click.group(name="digest")
def digest_group() -> None:
    """Preview and send a channel's weekly digest.

    \b
    Example:
        digestbot digest preview console:me
        digestbot digest preview slack:T0001:C2147483705 --format slack --json
    """


@digest_group.command()
@click.argument("channel")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Render as plain text, Slack Block Kit or Discord messages.")
@click.option("--now", "now_text", metavar="ISO-TIME", help="Build as if it were this time (default: now).")
@json_option
@friendly_errors
def preview(channel: str, fmt: str, now_text: str | None, as_json: bool) -> None:
    """Show the digest CHANNEL would get now, without posting or recording anything.

    Slack and Discord formats print the exact message payloads. With --json
    the output is {"digest": ..., "rendered": ...}.

    \b
    Example:
        digestbot digest preview console:me
        digestbot digest preview discord:81384788765712384:81384788765712384 --format discord
    """
    from digests.build import build_digest, digest_to_dict

    core = get_core()
    digest = build_digest(core, channel, _parse_now(now_text) if now_text else core.clock())
    rendered = _render(digest, fmt)
    if as_json:
        print_json({"digest": digest_to_dict(digest), "rendered": rendered})
    elif isinstance(rendered, str):
        click.echo(rendered)
    else:
        print_json(rendered)


def _parse_now(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO time such as 2026-11-30T09:00+00:00", param_hint="--now")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _render(digest: Any, fmt: str) -> Any:
    if fmt == "slack":
        from bot.render_slack import render_slack

        return render_slack(digest)
    if fmt == "discord":
        from bot.render_discord import render_discord

        return render_discord(digest)
    from bot.render_text import render_text

    return render_text(digest)


# `digest send` and `status` live with delivery (bot/cli_run.py); bot/cli.py finds `status` here.
from .cli_run import send, status

digest_group.add_command(send)
__all__ = ["channels", "digest_group", "status", "subscribe", "unsubscribe"]
