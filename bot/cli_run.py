"""`digestbot run`, `digestbot status` and `digestbot digest send`: the delivery side of the CLI."""

from __future__ import annotations

import logging
from typing import Any

import click

from bot.cli_common import friendly_errors, get_core, json_option, print_json

OK_OUTCOMES = ("posted", "recovered", "already")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _say(text: str) -> None:
    click.echo(text, err=True)


@click.command()
@click.option("--once", is_flag=True, help="Deliver what is due now (after a fetch if arXiv announced since the last one), then exit.")
@click.option("--no-slack", is_flag=True, help="Do not serve Slack even if SLACK_BOT_TOKEN is set.")
@click.option("--no-discord", is_flag=True, help="Do not serve Discord even if DISCORD_TOKEN is set.")
@click.option("--no-fetch", is_flag=True, help="Do not fetch arXiv at start (scheduled fetches still run).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@friendly_errors
def run(once: bool, no_slack: bool, no_discord: bool, no_fetch: bool, verbose: bool) -> None:
    """Run the bot: arXiv fetches after each announcement and each channel's weekly digest.

    Slack and Discord are served when SLACK_BOT_TOKEN / DISCORD_TOKEN are set; without
    them, console:* channels get their digests printed here. Digests missed while the bot
    was down are sent once at start; ones more than a week late are skipped. Ctrl-C stops.

    \b
    Example:
        digestbot run
        digestbot run --once --no-fetch     # e.g. from cron
    """
    import asyncio

    from bot.runner import Platforms, run_bot

    _setup_logging(verbose)
    core = get_core()
    platforms = Platforms.from_settings(core.settings, slack=not no_slack, discord=not no_discord)
    try:
        results = asyncio.run(run_bot(core, once=once, platforms=platforms, fetch=not no_fetch, say=_say))
    except KeyboardInterrupt:
        _say("Stopped.")
        return
    if once:
        for result in results:
            click.echo(f"{result.channel}: {result.outcome}" + (f" ({result.detail})" if result.detail else ""))
        if not results:
            click.echo("Nothing was due.")


def _when(iso: str | None, tz: str | None = None) -> str:
    if not iso:
        return "-"
    from datetime import datetime
    from zoneinfo import ZoneInfo

    moment = datetime.fromisoformat(iso)
    if tz:
        moment = moment.astimezone(ZoneInfo(tz))
    return moment.strftime("%a %Y-%m-%d %H:%M ") + (tz or moment.strftime("%Z") or "UTC")


def _status_line(info: dict[str, Any]) -> str:
    schedule = info.get("schedule") or {}
    if info["broken_reason"]:
        state = f"BROKEN since {_when(info['broken_at'])}: {info['broken_reason']}; next try {_when(info['next_run'], schedule.get('tz'))}"
    elif info["paused"]:
        state = "paused (no themes)"
    else:
        state = f"next {_when(info['next_run'], schedule.get('tz'))}"
    last = info["last_digest"]
    last_text = f"last {last['week']} posted {_when(last['posted_at'])}" if last else "no digest yet"
    attempt = info.get("last_attempt")
    if attempt and attempt["status"] in ("pending", "failed", "skipped"):
        last_text += f"; {attempt['week']} {attempt['status']}" + (f": {attempt['error']}" if attempt["error"] else "")
    if info.get("delivering"):
        lease = info["delivering"]
        last_text += f"; being delivered by {lease['by'].rsplit(':', 1)[0]} until {_when(lease['until'])}"
    themes = ", ".join(info["themes"]) or "-"
    return f"{info['channel']}  [{themes}]  {state}  |  {last_text}"


def _fetch_line(run: Any) -> str:
    text = f"  {run.started[:16].replace('T', ' ')}  {run.outcome:<6}  {run.papers} papers"
    text += f"  days {run.window_start[:10]} to {last_covered_day(run.window_end)}"
    return text + (f"  ({run.reason})" if run.reason else "")


def last_covered_day(window_end: str) -> str:
    """Return the last day a fetch window covered: its end (a midnight) is exclusive."""
    from datetime import datetime, timedelta

    try:
        end = datetime.fromisoformat(window_end)
    except ValueError:
        return window_end[:10]
    return (end - timedelta(microseconds=1)).date().isoformat() if "T" in window_end else window_end[:10]


@click.command()
@json_option
@friendly_errors
def status(as_json: bool) -> None:
    """Show each channel's last digest, next run and broken reason, and the last arXiv fetches.

    \b
    Example:
        digestbot status
        digestbot status --json
    """
    import dataclasses

    from digests.channels import list_channels
    from digests.fetch import last_runs
    from digests.ledger import channel_status

    core = get_core(sync=False)
    now = core.clock()
    channels = [channel_status(core, c.key, now) for c in list_channels(core)]
    runs = last_runs(core, 5)
    if as_json:
        print_json({"now": now.isoformat(), "channels": channels, "fetch_runs": [dataclasses.asdict(r) for r in runs]})
        return
    click.echo(f"Channels ({len(channels)}):" if channels else "No channels yet; add one with: digestbot subscribe CHANNEL --theme THEME")
    for info in channels:
        click.echo("  " + _status_line(info))
    click.echo("Last arXiv fetches:" if runs else "No arXiv fetch has run yet (digestbot fetch, or digestbot run).")
    for run in runs:
        click.echo(_fetch_line(run))


@click.command()
@click.argument("channel")
@click.option("--force", is_flag=True, help="Post this week's digest again even if it was already delivered.")
@json_option
@friendly_errors
def send(channel: str, force: bool, as_json: bool) -> None:
    """Build CHANNEL's digest for this week and post it now, exactly once per week.

    A digest already delivered this week is not posted again (the command says where it
    is); --force posts the same stored digest once more, e.g. after someone deleted it.
    A channel marked broken is tried anyway, and cleared if the post succeeds.

    \b
    Example:
        digestbot digest send console:demo
        digestbot digest send slack:T0123:C0456 --force
    """
    import asyncio

    from bot.deliver import Deliverer, catalog_lane
    from digests.channels import require_channel

    core = get_core()
    require_channel(core, channel)

    async def go() -> Any:
        deliverer = Deliverer(core, max_inline_wait=60)
        try:
            result = await deliverer.deliver(channel, core.clock(), include_broken=True)
            if force and result.outcome == "already":
                result = await deliverer.repost(result.digest_id)
            return result
        finally:
            catalog_lane(core).close()

    result = asyncio.run(go())
    if as_json:
        print_json(dataclasses_asdict(result))
    elif result.outcome == "already":
        click.echo(f"{result.digest_id} was already delivered ({result.ref}); use --force to post it again.")
    elif result.outcome in OK_OUTCOMES or result.outcome == "reposted":
        click.echo(f"Posted {result.digest_id} to {channel} ({result.ref}).")
    elif result.outcome == "leased":  # not an error: the other process posts it (or, if it died, the next sweep)
        click.echo(f"{result.digest_id} is {result.detail}, so it is not posted here. If that process has "
                   "stopped, `digestbot run` or this command finishes it once the lease runs out.")
    if result.outcome not in OK_OUTCOMES + ("reposted", "leased"):
        raise click.ClickException(_failure_text(channel, result))


def dataclasses_asdict(obj: Any) -> dict[str, Any]:
    """Return a dataclass as a dict (imported lazily to keep start-up light)."""
    import dataclasses

    return dataclasses.asdict(obj)


def _failure_text(channel: str, result: Any) -> str:
    texts = {
        "broken": f"{channel} refused the digest: {result.detail}. It is marked broken; its next scheduled digest "
                  f"tries again, or run this command once it is fixed.",
        "retry": f"The platform is rate limiting {channel} ({result.detail}); `digestbot run` will retry it.",
        "paused": f"{channel} has no themes; subscribe it with: digestbot subscribe {channel} --theme THEME",
        "unavailable": str(result.detail),
        "failed": f"The digest for {channel} could not be sent: {result.detail}",
    }
    return texts.get(result.outcome, f"{channel}: {result.outcome} ({result.detail})")
