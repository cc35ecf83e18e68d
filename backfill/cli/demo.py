"""`backfill demo`: the users' first step (a 7-day Phase 3+4 test run) end to end on the sample league.

It sets up whatever is missing and leaves it running for the next command: a local Redis,
the demo's data in the warehouse, and one worker whose pid `backfill down` knows. The range,
phases and data come from the pipeline's plugin (`backfill.cli.plugin.Demo`); the reference
pipeline's are the users' test week on its sample league.
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
from backfill.cli.plugin import Demo, plugin_of
from backfill.cli.run import Session, check_succeeded, prepare_targets, print_summary, wait_for
from backfill.cli.selection import plan_from_warehouse
from backfill.errors import BadInput
from backfill.planner import PlanRequest
from backfill.settings import Settings, redact_url
from backfill.spec import PipelineSpec
from backfill.state import RunRecord


def demo_pipeline(ctx: CliContext) -> str:
    """The configured pipeline if it is there, else the reference pipeline installed with the package."""
    return str(ctx.pipeline_dir())


def _demo_of(spec: PipelineSpec) -> Demo:
    demo = plugin_of(spec).demo
    if demo is None:
        raise BadInput(f"pipeline {spec.name} ({spec.path}) has no demo: its pipeline.yaml names no `plugin:` "
                       "with one", hint="run `backfill demo` with the reference pipeline (BACKFILL_PIPELINE unset)")
    return demo


def _ensure_data(spec: PipelineSpec, demo: Demo, session: Session, console: Console) -> None:
    warehouse = session.warehouse(create=True)
    if warehouse.table_exists(spec.schedule_table) and Calendar.from_warehouse(warehouse, spec.schedule_table).seasons:
        return
    console.print(f"loading {demo.data_name} ({demo.season}) into {session.settings.warehouse_url} ...")
    demo.load(warehouse, demo.season)


def _ensure_worker(ctx: CliContext, session: Session, console: Console) -> None:
    """Start one worker unless one already answers; its pid goes under <home>/pids for `backfill down`."""
    if session.dispatcher.workers_answering(timeout=1.0):
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
    while not session.dispatcher.workers_answering(timeout=1.0):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise click.ClickException(f"the worker did not start; see {settings.home / 'worker.log'}")


@click.command("demo")
@click.pass_obj
def demo(ctx: CliContext) -> None:
    """Run the pipeline's demo backfill; the reference pipeline's is the users' 7-day test run
    (2023-11-01..07, phases 3 and 4) on the sample league."""
    console = Console(stderr=True)
    pipeline = demo_pipeline(ctx)
    spec = ctx.spec(pipeline)
    plan_demo = _demo_of(spec)
    session = Session(ctx)
    console.print(f"redis: {redact_url(session.settings.redis_url_value)}")
    _ensure_data(spec, plan_demo, session, console)
    _ensure_worker(ctx, session, console)
    # The range's windows may read upstream partitions before it that were never computed, so
    # those are planned too (--with-upstream).
    request = PlanRequest(ranges=((plan_demo.start, plan_demo.end),), phases=plan_demo.phases,
                          concurrency=ctx.settings.concurrency, force=True, batch="auto", with_upstream=True)
    warehouse = session.warehouse()
    plan, _ = plan_from_warehouse(spec, warehouse, request)
    record = RunRecord(run_id=engine.new_run_id(), pipeline=pipeline, request=request.to_json(),
                       alerts="off", history_table=spec.run_history_table)
    prepare_targets(spec, warehouse, plan)
    engine.start_run(session.store, session.dispatcher, plan, record, session.triggers, observers=session.observers)
    engine.record_request(warehouse, record)
    click.echo(record.run_id)
    console.print(f"enqueued {len(plan)} tasks in {len(plan.waves)} waves: {plan_demo.scope} (--with-upstream)")
    info = wait_for(session, record.run_id, console)
    print_summary(info, console)
    # A --home given on the command line must be given again: the hint says so, ready to paste.
    home = ctx.settings.home
    cmd = "backfill" if home == Settings().home else f"backfill --home {shlex.quote(str(home))}"
    console.print(f"next: `{cmd} status`, `{cmd} runs`, `{cmd} down` to stop the local Redis and worker",
                  soft_wrap=True)  # not wrapped mid-command: it is there to be pasted
    check_succeeded(info)
