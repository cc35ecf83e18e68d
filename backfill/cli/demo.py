"""`backfill demo`: the users' first step (a 7-day Phase 3+4 test run) end to end on the sample league.

It sets up whatever is missing and leaves it running for the next command: a local Redis,
the sample league in the warehouse, and one worker whose pid `backfill down` knows.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import click
from rich.console import Console

from backfill import engine
from backfill.calendar import Calendar
from backfill.cli.context import CliContext
from backfill.cli.run import Session, check_succeeded, prepare_targets, print_summary, wait_for
from backfill.cli.selection import plan_from_warehouse
from backfill.planner import PlanRequest
from backfill.settings import Settings, redact_url
from backfill.state import RunRecord

DEMO_RANGE = ("2023-11-01", "2023-11-07")
DEMO_SEASON = "2023-24"


def demo_pipeline(ctx: CliContext) -> str:
    """The configured pipeline if it is there, else the NBA pipeline shipped with the package."""
    configured = Path(ctx.settings.pipeline)
    if (configured / "pipeline.yaml").exists():
        return str(configured.resolve())
    import pipelines.nba

    return str(Path(pipelines.nba.__file__).resolve().parent)


def _ensure_league(ctx: CliContext, session: Session, console: Console) -> None:
    spec = ctx.spec(demo_pipeline(ctx))
    warehouse = session.warehouse(create=True)
    if warehouse.table_exists(spec.schedule_table) and Calendar.from_warehouse(warehouse, spec.schedule_table).seasons:
        return
    from pipelines.nba.sample import load_sample

    console.print(f"loading the sample league ({DEMO_SEASON}) into {session.settings.warehouse_url} ...")
    load_sample(warehouse, seasons=(DEMO_SEASON,))


def _ensure_worker(ctx: CliContext, session: Session, console: Console) -> None:
    """Start one worker unless one already answers; its pid goes under <home>/pids for `backfill down`."""
    if session.app.control.ping(timeout=1.0):
        return
    from backfill.cli.services import celery_worker_argv, worker_env
    from backfill.localredis import pids_dir

    settings = session.settings
    settings.home.mkdir(parents=True, exist_ok=True)
    log = (settings.home / "worker.log").open("ab")
    env = worker_env(settings, settings.redis_url_value)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path.cwd()), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(celery_worker_argv(settings, ["--loglevel", "WARNING"]), env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    pdir = pids_dir(settings)
    pdir.mkdir(parents=True, exist_ok=True)
    (pdir / f"worker-{proc.pid}.pid").write_text(f"{proc.pid}\n")
    console.print(f"started a worker (pid {proc.pid}, log {settings.home / 'worker.log'})")
    deadline = time.monotonic() + 60
    while not session.app.control.ping(timeout=1.0):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise click.ClickException(f"the worker did not start; see {settings.home / 'worker.log'}")


@click.command("demo")
@click.pass_obj
def demo(ctx: CliContext) -> None:
    """Run the users' 7-day test backfill (2023-11-01..07, phases 3 and 4) on the sample league."""
    console = Console(stderr=True)
    session = Session(ctx)
    console.print(f"redis: {redact_url(session.settings.redis_url_value)}")
    _ensure_league(ctx, session, console)
    _ensure_worker(ctx, session, console)
    import datetime as dt

    pipeline = demo_pipeline(ctx)
    spec = ctx.spec(pipeline)
    # The test week is mid-season: its windows read Phase 3 back to the season start, which the
    # sample league has never computed, so those upstream partitions are planned too.
    request = PlanRequest(ranges=((dt.date.fromisoformat(DEMO_RANGE[0]), dt.date.fromisoformat(DEMO_RANGE[1])),),
                          phases=frozenset({3, 4}), concurrency=ctx.settings.concurrency, force=True,
                          batch="auto", with_upstream=True)
    warehouse = session.warehouse()
    plan, _ = plan_from_warehouse(spec, warehouse, request)
    record = RunRecord(run_id=engine.new_run_id(), pipeline=pipeline, request=request.to_json(),
                       alerts="off", history_table=spec.run_history_table)
    prepare_targets(spec, warehouse, plan)
    engine.start_run(session.store, session.dispatcher, plan, record, session.triggers, observers=session.observers)
    engine.record_request(warehouse, record)
    click.echo(record.run_id)
    console.print(f"enqueued {len(plan)} tasks in {len(plan.waves)} waves: the test week and the Phase 3 "
                  "partitions its windows read back to the season start (--with-upstream)")
    info = wait_for(session, record.run_id, console)
    print_summary(info, console)
    # A --home given on the command line must be given again: the hint says so, ready to paste.
    home = ctx.settings.home
    cmd = "backfill" if home == Settings().home else f"backfill --home {shlex.quote(str(home))}"
    console.print(f"next: `{cmd} status`, `{cmd} runs`, `{cmd} down` to stop the local Redis and worker",
                  soft_wrap=True)  # not wrapped mid-command: it is there to be pasted
    check_succeeded(info)
