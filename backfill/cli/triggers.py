"""`backfill triggers status|pause|resume`: see and override the pauses on downstream triggers.

Runs pause and release their triggers themselves; these commands are for people: to see who
holds a pause and until when, to pause by hand before some manual work (under a lease that
expires, like a run's), and to force everything back on when a holder is known to be gone.

`pause` takes only the names the pipeline knows (`known_triggers`), checked before Redis is
touched: a typo, or an unquoted `phase3->phase4` that bash turned into `phase3-`, would
otherwise be a pause nobody ever asks about.
"""

from __future__ import annotations

import getpass
import json
import socket

import click
import redis
from rich.console import Console
from rich.table import Table

from backfill.cli.context import CliContext
from backfill.localredis import ensure_redis
from backfill.triggers import Triggers, check_trigger_name, known_triggers


def cli_holder() -> str:
    """The holder name of pauses made at the CLI: one per user and machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _triggers(ctx: CliContext) -> Triggers:
    return Triggers(redis.Redis.from_url(ensure_redis(ctx.settings), socket_connect_timeout=5, socket_timeout=10))


def _known(ctx: CliContext, pipeline: str | None) -> tuple[list[str], str]:
    spec = ctx.spec(pipeline)
    return known_triggers(spec), spec.name


_PIPELINE = click.option("--pipeline", default=None,
                         help="Pipeline directory whose triggers NAME must be one of (default pipelines/nba).")


@click.group("triggers")
def triggers() -> None:
    """Pause or resume downstream triggers ('phase3->phase4', ...) and show who holds them.

    Quote trigger names: unquoted, bash reads '>' as a redirect.
    """


@triggers.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(ctx: CliContext, as_json: bool) -> None:
    """Every trigger ever paused: enabled or paused, by whom, why, and until when."""
    rows = _triggers(ctx).status()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no trigger has been paused: all downstream triggers are enabled")
        return
    table = Table(show_edge=False)
    for col in ("trigger", "state", "holder", "reason", "since", "until"):
        table.add_column(col)
    for row in rows:
        leases = row["leases"] or [{}]
        for i, lease in enumerate(leases):
            state = ("[red]paused[/red]" if row["paused"] else "[green]enabled[/green]") if i == 0 else ""
            table.add_row(row["name"] if i == 0 else "", state, lease.get("holder") or "",
                          lease.get("reason") or "", lease.get("since") or "", lease.get("until") or "")
    Console().print(table)


@triggers.command("pause")
@click.argument("name")
@click.option("--ttl", type=click.FloatRange(min=1), default=3600, show_default=True,
              help="Seconds until the pause ends by itself unless paused again.")
@click.option("--reason", default="", help="Shown in status.")
@_PIPELINE
@click.pass_obj
def pause(ctx: CliContext, name: str, ttl: float, reason: str, pipeline: str | None) -> None:
    """Pause trigger NAME, quoted like 'phase3->phase4', under your own lease.

    NAME must be a trigger of the pipeline (exit 2 otherwise, naming the known ones).
    """
    known, pipeline_name = _known(ctx, pipeline)
    check_trigger_name(name, known, pipeline_name)
    holder = cli_holder()
    t = _triggers(ctx)
    t.pause(name, holder, ttl, reason)
    until = next((r["until"] for r in t.status() if r["name"] == name), None)
    click.echo(f"paused {name} as {holder} until {until} (renew by pausing again)")


@triggers.command("resume")
@click.argument("name")
@click.option("--all", "force_all", is_flag=True, help="Release every holder's pause, not only yours.")
@_PIPELINE
@click.pass_obj
def resume(ctx: CliContext, name: str, force_all: bool, pipeline: str | None) -> None:
    """Release your pause on NAME, quoted like 'phase3->phase4'; --all: every pause on it.

    NAME must be a trigger of the pipeline or one `status` lists (so a pause taken under a
    wrong name before names were checked can still be released); exit 2 otherwise.
    """
    known, pipeline_name = _known(ctx, pipeline)
    t = _triggers(ctx)
    if name not in known:
        check_trigger_name(name, sorted({*known, *t.names()}), pipeline_name)
    if force_all:
        released = t.release_all(name)
        if released:
            click.echo(f"warning: force-released pauses held by {', '.join(released)}; a run still "
                       "going now writes with this trigger enabled", err=True)
    else:
        holder = cli_holder()
        if not t.release(name, holder):
            others = [lease["holder"] for lease in t.leases(name)]
            extra = f"; still paused by {', '.join(others)} (use --all to override)" if others else ""
            click.echo(f"{holder} held no pause on {name}{extra}")
            return
    state = "enabled" if t.is_enabled(name) else "still paused by " + ", ".join(h["holder"] for h in t.leases(name))
    click.echo(f"{name}: {state}")
