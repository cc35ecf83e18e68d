"""`backfill pause RUN`: hold a running backfill where it is, to go on later with `backfill resume RUN`.

The monitoring guide's old way to stop for the night was `cancel` then `resume`, and `cancel`
released the trigger pauses over half-written windows. A pause keeps everything a run holds
(partition locks, trigger pauses, renewed by the watchdog) and only stops new tasks: the ones
running finish and are recorded, queued ones go back to the run's ready set.
"""

from __future__ import annotations

import datetime as dt

import click

from backfill import engine
from backfill.cli.context import CliContext
from backfill.cli.run import Session
from backfill.cli.triggers import cli_holder
from backfill.state import TaskStatus


@click.command("pause")
@click.argument("run_id")
@click.option("--reason", default="", help="Shown by `status` (default: paused by hand).")
@click.pass_obj
def pause(obj: CliContext, run_id: str, reason: str) -> None:
    """Pause run RUN_ID: running tasks finish, nothing new starts, trigger pauses are kept.

    `backfill resume RUN_ID` continues it. Exit 2 if the run is unknown or already finished.
    """
    session = Session(obj)
    run = engine.pause(session.store, run_id, cli_holder(), reason)
    since = dt.datetime.fromtimestamp(run.paused_at or 0, dt.UTC).isoformat(timespec="seconds")
    running = sum(1 for s in session.store.states(run_id).values() if s is TaskStatus.running)
    click.echo(f"run {run_id} paused since {since} by {run.paused_by}"
               + (f" ({run.pause_kind}: {run.pause_reason})" if run.pause_kind != "manual" else ""))
    click.echo(f"{running} running task(s) will finish; nothing new starts; trigger pauses are kept "
               f"(`backfill resume {run_id}` continues)", err=True)
