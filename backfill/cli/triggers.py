"""`backfill triggers status|pause|resume`: see and override the pauses on downstream triggers.

Runs pause and release their triggers themselves; these commands are for people: to see who
holds a pause and until when, to pause by hand before some manual work (under a lease that
expires, like a run's), and to force everything back on when a holder is known to be gone.
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
from backfill.triggers import Triggers


def cli_holder() -> str:
    """The holder name of pauses made at the CLI: one per user and machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _triggers(ctx: CliContext) -> Triggers:
    return Triggers(redis.Redis.from_url(ensure_redis(ctx.settings), socket_connect_timeout=5, socket_timeout=10))


@click.group("triggers")
def triggers() -> None:
    """Pause or resume downstream triggers (`phase3->phase4`, ...) and show who holds them."""


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
@click.pass_obj
def pause(ctx: CliContext, name: str, ttl: float, reason: str) -> None:
    """Pause trigger NAME (e.g. phase3->phase4) under your own lease."""
    holder = cli_holder()
    t = _triggers(ctx)
    t.pause(name, holder, ttl, reason)
    until = next((r["until"] for r in t.status() if r["name"] == name), None)
    click.echo(f"paused {name} as {holder} until {until} (renew by pausing again)")


@triggers.command("resume")
@click.argument("name")
@click.option("--all", "force_all", is_flag=True, help="Release every holder's pause, not only yours.")
@click.pass_obj
def resume(ctx: CliContext, name: str, force_all: bool) -> None:
    """Release your pause on NAME; with --all, every pause on it (runs included)."""
    t = _triggers(ctx)
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
