"""`enqueue`, `status`, `runs`, `cancel`, `retry`, `resume`: driving runs from the command line.

The CLI talks to Redis (run state) and, through the Celery app, to the broker; it opens an
embedded DuckDB file only per operation, so the workers that own it between tasks can go on.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import click
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from backfill import engine
from backfill.calendar import Calendar
from backfill.cli.advice import advise, print_advice, season_spans
from backfill.cli.context import CliContext, duckdb_reader
from backfill.cli.plan import _duration, render_options, render_plan
from backfill.cli.preflight import check_request, refuse_on_problems
from backfill.cli.selection import (
    build_request,
    option_flag,
    parse_options,
    plan_from_warehouse,
    selection_options,
    sent_options,
)
from backfill.cli.windows import window_from, window_options
from backfill.errors import BadInput, CannotConnect, ProblemsFound, SpecError
from backfill.outcome import ErrorCategory, TaskOutcome
from backfill.planner import Plan, PlanRequest, build_plan
from backfill.processors.base import load_ref
from backfill.runhistory import RunHistory
from backfill.settings import Settings
from backfill.spec import PipelineSpec
from backfill.state import RedisStateStore, RunRecord, RunStatus, TaskStatus
from backfill.state.redis import OUTAGE_ERRORS
from backfill.warehouse import Warehouse, open_warehouse


class WorkerDispatcher(engine.Dispatcher, Protocol):
    """The engine's Dispatcher, plus the one thing only the CLI asks: does any worker answer yet."""

    def workers_answering(self, timeout: float = 1.0) -> bool: ...


class Session:
    """What the run commands share: a Redis that answers, the state store, and a dispatcher.

    The dispatcher comes from the factory `Settings.dispatcher` names (`workers.factory:open_dispatcher`,
    Celery's): the CLI reaches the broker only through it, never by importing Celery or `workers`.
    """

    def __init__(self, ctx: CliContext) -> None:
        from backfill.localredis import ensure_redis

        url = ensure_redis(ctx.settings)
        self.settings: Settings = ctx.settings.model_copy(update={"redis_url": SecretStr(url)})
        self.store = RedisStateStore.from_url(url)
        self._dispatcher: WorkerDispatcher | None = None

    @property
    def dispatcher(self) -> WorkerDispatcher:
        if self._dispatcher is None:
            factory = load_ref(self.settings.dispatcher, "dispatcher factory (BACKFILL_DISPATCHER)", BadInput)
            self._dispatcher = factory(self.settings)
        return self._dispatcher

    @property
    def observers(self) -> engine.Observers:
        """Who listens to the engine's events from the CLI: a `retry` marks its sequence for the
        alert update digest; a run finished from here (nothing left to resume) sends its final digest."""
        from backfill.observers import standard_observers

        return standard_observers(self.store, self.settings)

    @property
    def triggers(self) -> engine.TriggerPauser:
        from backfill.triggers import Triggers

        return Triggers(self.store.client)

    def throttle_limit(self) -> int | None:
        from backfill.throttle import Throttle

        try:
            return Throttle(self.store.client, initial_limit=self.settings.max_warehouse_jobs).limit()
        except Exception:  # status must still show the run if the throttle keys are odd
            return None

    def trigger_pauses(self, run_id: str) -> list[dict[str, Any]]:
        """The trigger pauses this run holds, and until when (the lease ends them if the run dies)."""
        from backfill.triggers import Triggers

        return [{"trigger": row["name"], "until": lease["until"]} for row in Triggers(self.store.client).status()
                for lease in row["leases"] if lease["holder"] == run_id]

    def warehouse(self, *, create: bool = False) -> Warehouse:
        url = self.settings.warehouse_url
        if url.startswith("duckdb:"):
            return open_warehouse(url, create=create, hold=False, wait_notice=True)
        return open_warehouse(url)

    def reader(self) -> Warehouse:
        """The warehouse for reads only: on DuckDB a snapshot of the file while a worker holds it, so
        planning does not wait for the workers' writes (BigQuery: the warehouse itself)."""
        url = self.settings.warehouse_url
        if url.startswith("duckdb:"):
            return duckdb_reader(url)
        return open_warehouse(url)


def prepare_targets(spec: PipelineSpec, warehouse: Warehouse, plan: Plan, reader: Warehouse | None = None) -> None:
    """Create the run's target tables and the run history up front, once.

    Many tasks of a wave write the same table; letting each of them create it on first use
    turns into concurrent DDL, which DuckDB refuses with write-write conflicts. With `reader`
    (a read-only view), nothing is opened for writing when every table already exists: on
    DuckDB that write would wait for the workers holding the file.
    """
    names = sorted({t.processor for t in plan.tasks()} & set(spec.processors))
    if reader is not None and reader.table_exists(spec.run_history_table) and all(
            reader.table_exists(spec.processors[n].target) for n in names):
        return
    if reader is not None:
        reader.close()  # one process may not hold a DuckDB file read-only and open it for writing
    for name in sorted({t.processor for t in plan.tasks()}):
        if name in spec.processors:
            warehouse.create_table(spec.processors[name].table)
    RunHistory.of(warehouse, spec).ensure()


def _pipeline_path(ctx: CliContext, pipeline: str | None) -> str:
    return str(Path(pipeline or ctx.settings.pipeline).resolve())


def wait_for(session: Session, run_id: str, console: Console, poll: float = 0.5) -> dict[str, Any]:
    """A progress bar (done/total, failures, rate, ETA) until the run is no longer running."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("failed {task.fields[failed]} blocked {task.fields[blocked]}"),
               TextColumn("{task.fields[rate]}/min"), TextColumn("ETA {task.fields[eta]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        job = bar.add_task(run_id, total=None, failed=0, blocked=0, rate="-", eta="-")
        while True:
            info = engine.progress(session.store, run_id, session.settings.stall_after)
            if info is None:
                raise BadInput(f"run {run_id} disappeared from Redis", hint=f"`backfill resume {run_id}`")
            c = info["counts"]
            eta = info["eta_seconds"]
            bar.update(job, total=info["total"], completed=info["settled"], failed=c[TaskStatus.failed],
                       blocked=c[TaskStatus.blocked], rate=f"{info['rate_per_minute']:.0f}",
                       eta=_duration(eta) if eta is not None else "-")
            if not waiting(info):
                return info
            time.sleep(poll)


def waiting(info: dict[str, Any]) -> bool:
    """`--wait` goes on while the run runs, or waits for its window; a pause by hand or by a gate
    needs someone to act, so the wait ends there (exit 1, saying why)."""
    paused = info.get("paused") or {}
    return info["status"] == RunStatus.running.value or (
        info["status"] == RunStatus.paused.value and paused.get("kind") == "window")


def print_summary(info: dict[str, Any], console: Console) -> None:
    c = info["counts"]
    words = ", ".join(f"{c[s]} {s}" for s in (TaskStatus.partial, TaskStatus.failed, TaskStatus.blocked,
                                                TaskStatus.revoked, TaskStatus.cancelled))
    console.print(f"run {info['run_id']}: [bold]{info['status']}[/bold] - {c[TaskStatus.success]} succeeded, "
                  f"{words} of {info['total']} in {_duration(info['elapsed_seconds'])}"
                  + (f"; {info['unresolved_players']} unresolved player name(s)" if info.get("unresolved_players")
                     else ""))
    for f in info["failures"][:20]:
        console.print(f"  [red]failed[/red] {f['task_id']}: {f['category']}: {f['message']}")
    for f in info.get("partials", [])[:20]:
        console.print(f"  [yellow]partial[/yellow] {f['task_id']}: {f['category']}: {f['message']}")


# `--wait` means the same on every command that starts work: watch it to the end, exit by its outcome.
wait_option = click.option("--wait", is_flag=True, help="Show progress until the run ends.")


def wait_and_exit(session: Session, run_id: str, console: Console) -> None:
    """`--wait`: show progress until the run ends, print the summary, exit 1 unless it succeeded."""
    info = wait_for(session, run_id, console)
    print_summary(info, console)
    check_succeeded(info)


def check_succeeded(info: dict[str, Any]) -> None:
    """A run that ended in anything but success is a problem found (exit 1); `partial` included."""
    if info["status"] == RunStatus.partial.value:
        partial, wrong = info["counts"][TaskStatus.partial], info["counts"][TaskStatus.failed]
        what = [f"{partial} task(s) wrote less than expected"] if partial else []
        what += [f"{wrong} task(s) wrote rows that failed a check "
                 f"({', '.join(sorted({str(f['category']) for f in info['failures']}))})"] if wrong else []
        raise ProblemsFound(f"run {info['run_id']} ended partial: {'; '.join(what)}",
                            hint=f"`backfill gaps` lists them with the reason, `backfill validate` names duplicate "
                                 f"keys; fix the raw data or SQL and `backfill retry {info['run_id']}`")
    if info["status"] == RunStatus.paused.value:
        paused = info.get("paused") or {}
        raise ProblemsFound(f"run {info['run_id']} is paused ({paused.get('kind')}: {paused.get('reason')})",
                            hint=f"`backfill resume {info['run_id']}` continues it")
    if info["status"] != RunStatus.succeeded.value:
        if any(f["category"] == ErrorCategory.dependency_gap for f in info["failures"]) and info.get("request"):
            # Upstream partitions outside the run never ran: a retry meets the same holes.
            from backfill.cli.selection import request_flags

            raise ProblemsFound(f"run {info['run_id']} ended {info['status']}: tasks read upstream partitions that "
                                "this run does not plan and that never succeeded (dependency_gap)",
                                hint=f"plan them too: `backfill enqueue {request_flags(info['request'])} "
                                     "--with-upstream --wait`")
        raise ProblemsFound(f"run {info['run_id']} ended {info['status']}",
                            hint=f"see `backfill status {info['run_id']}`; fix and `backfill retry {info['run_id']}`")


@click.command("enqueue")
@selection_options
@click.option("--alerts", type=click.Choice(["digest", "immediate", "off"]), default=None,
              help="Alert mode (default from settings: digest).")
@click.option("--strict/--no-strict", default=True, show_default=True,
              help="Strict: upstream windows must be complete before a task runs.")
@option_flag
@click.option("--dry-run", is_flag=True, help="Print the plan and enqueue nothing.")
@window_options
@click.option("--gate", type=click.Choice(["validate"]), default=None,
              help="Write one season at a time and validate it before the next starts; a failed validation "
                   "pauses the run (`resume` after a fix and `retry`, or `resume --accept`).")
@wait_option
@click.pass_obj
def enqueue(obj: CliContext, /, pipeline: str | None, alerts: str | None, strict: bool, options: tuple[str, ...],
            dry_run: bool, wait: bool, window: str | None, tz: str | None, days: str | None, gate: str | None,
            **selection: Any) -> None:
    """Plan a backfill and send it to the workers; prints the run id.

    With --window, tasks start only inside the window; outside it the run pauses by itself.
    """
    run_options = parse_options(options)
    hours = window_from(window, tz, days)
    spec = obj.spec(pipeline)
    request = build_request(default_concurrency=obj.settings.concurrency, **selection)
    console = Console(stderr=True)
    session = Session(obj)
    warehouse = session.warehouse()
    reader = session.reader()  # planning reads a snapshot while workers hold a DuckDB file
    try:
        calendar = Calendar.from_warehouse(reader, spec.schedule_table)  # read once, for preflight and the plan
        refuse_on_problems(check_request(spec, reader, request, calendar), console)
        plan, calendar = plan_from_warehouse(spec, reader, request, calendar)
    except BaseException:
        reader.close()  # a refused request leaves no lingering connection behind (an in-process caller reopens)
        raise
    advice = advise(plan, click.get_current_context(), season_spans(calendar))
    if dry_run or len(plan) == 0:
        reader.close()  # an in-process caller (tests, a library) must not keep the file's lock
    if dry_run:
        render_plan(plan, Console(), advice)
        render_options(sent_options(spec, sorted({t.processor for t in plan.tasks()}, key=spec.order.index),
                                    run_options), Console())
        return
    if len(plan) == 0:
        print_advice(advice, console)
        console.print("nothing to do: every selected partition's latest run succeeded (use --force to redo)"
                      if plan.skipped_completed else "nothing to do: the selection has no tasks (the warnings say why)")
        return
    record = RunRecord(run_id=engine.new_run_id(), pipeline=_pipeline_path(obj, pipeline),
                       request={**request.to_json(), **({"options": run_options} if run_options else {}),
                                **({"window": hours.to_json()} if hours else {}),
                                **({"gate": gate} if gate else {})},
                       alerts=alerts or obj.settings.alerts, strict=strict, history_table=spec.run_history_table)
    prepare_targets(spec, warehouse, plan, reader)
    reader.close()
    engine.start_run(session.store, session.dispatcher, plan, record, session.triggers, session.settings,
                     observers=session.observers)
    # The id first: the request-ledger write below may wait for workers holding a DuckDB file
    # (it says so), and the run is already going.
    click.echo(record.run_id)
    sys.stdout.flush()
    console.print(f"enqueued {len(plan)} tasks in {len(plan.waves)} waves")
    started = session.store.get_run(record.run_id)
    if started is not None and started.status is RunStatus.paused:
        console.print(f"paused: {started.pause_reason}")
    print_advice(advice, console)
    try:
        engine.record_request(warehouse, record)
    except CannotConnect as exc:
        # The run is in Redis and going: failing the command now (exit 3) would say it did not start.
        console.print(f"[yellow]warning[/yellow]: the request ledger of {record.run_id} was not written "
                      f"({exc.message}); the run goes on. Only `resume` after a Redis loss needs it: "
                      "then enqueue the same selection again (what succeeded is skipped)", soft_wrap=True)
    if wait:
        if not session.dispatcher.workers_answering(timeout=1.0):
            console.print("[yellow]no worker answers yet[/yellow]: start one with `backfill worker` (waiting)")
        wait_and_exit(session, record.run_id, console)


def _latest_run(session: Session) -> str:
    runs = session.store.list_runs()
    if not runs:
        raise BadInput("no runs in Redis yet", hint="start one with `backfill enqueue`")
    return runs[0].run_id


def render_status(info: dict[str, Any], throttle: int | None, console: Console) -> None:
    """One headline, a table per phase and season, the pauses the run holds, the first failures.

    A stalled run says so, since when and why, instead of an ETA it would not keep.
    """
    stalled = info.get("stalled")
    paused = info.get("paused")
    if paused:
        since = dt.datetime.fromtimestamp(paused["since"] or 0).strftime("%Y-%m-%d %H:%M")
        pace = (f"[bold yellow]paused since {since} by {paused['by']}[/bold yellow] ({paused['reason']}); no ETA; "
                + ("resumes by itself when the window opens" if paused["kind"] == "window"
                   else f"`backfill resume {info['run_id']}` continues"))
    elif stalled:
        since = dt.datetime.fromtimestamp(stalled["since"]).strftime("%H:%M")
        pace = f"[bold red]stalled since {since}[/bold red] ({stalled['reason']})"
    else:
        eta = _duration(info["eta_seconds"]) if info["eta_seconds"] is not None else "-"
        pace = f"{info['rate_per_minute']:.0f} tasks/min; ETA {eta}"
    retrying = f", {info['waiting_retry']} waiting to retry" if info.get("waiting_retry") else ""
    console.print(f"run [bold]{info['run_id']}[/bold] {info['status']} - {info['settled']}/{info['total']} settled, "
                  f"{info.get('in_flight', 0)} in flight{retrying}; {pace}; "
                  f"throttle limit {throttle if throttle is not None else '-'}")
    hours = info.get("window")
    if hours:
        days = ",".join(hours["days"]) if len(hours["days"]) < 7 else "every day"
        nxt = f"closes {hours['closes']}" if hours["open"] else f"opens {hours['opens']}"
        console.print(f"  window {hours['start'][:5]}-{hours['end'][:5]} {hours['tz']} ({days}): "
                      f"{'open' if hours['open'] else 'shut'}, {nxt}")
    healed = info.get("healed") or {}
    if healed.get("count") or info.get("resent"):
        at = dt.datetime.fromtimestamp(healed["at"]).strftime("%H:%M:%S") if healed.get("at") else "-"
        console.print(f"  watchdog: {info.get('resent', 0)} task(s) re-sent after their worker died; "
                      f"healed {healed.get('count', 0)} time(s), last at {at}"
                      + (f" ({healed['reason']})" if healed.get("reason") else ""))
    table = Table(show_edge=False)
    shown = (TaskStatus.partial, TaskStatus.running, TaskStatus.failed, TaskStatus.blocked, TaskStatus.revoked,
             TaskStatus.pending, TaskStatus.cancelled)
    for col in ("phase", "season", "done", *shown):
        table.add_column(col, justify="right" if col not in ("season",) else "left")
    for g in info["by_phase_season"]:
        table.add_row(str(g["phase"]), g["season"], str(g[TaskStatus.success] + g[TaskStatus.skipped]),
                      *(str(g[s]) for s in shown))
    console.print(table)
    if info.get("unresolved_players"):
        console.print(f"  {info['unresolved_players']} player name(s) did not resolve through the registry "
                      "(a warning; listed by the pipeline's post_write hook)")
    for p in info.get("trigger_pauses", []):
        console.print(f"  trigger {p['trigger']} paused by this run until {p['until']}")
    for f in info["failures"][:10]:
        console.print(f"  [red]failed[/red] {f['task_id']}: {f['category']}: {f['message']}")
    alerts = info.get("alerts") or {}
    if alerts.get("mode"):
        console.print(f"  alerts {alerts['mode']}: {len(alerts.get('sent') or [])} sent"
                      + (f", [red]{len(alerts['failures'])} sink failure(s)[/red]" if alerts.get("failures") else ""))
    for f in (alerts.get("failures") or [])[-5:]:
        console.print(f"  [red]alert sink {f['sink']} failed[/red] for {f['kind']} {f['scope']}: {f['error']}")
    for f in info.get("partials", [])[:10]:
        console.print(f"  [yellow]partial[/yellow] {f['task_id']}: {f['category']}: {f['message']}")


@click.command("status")
@click.argument("run_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable status (shape in docs/cli.md).")
@click.option("--watch", is_flag=True, help="Refresh every 2 seconds until the run ends.")
@click.pass_obj
def status(obj: CliContext, run_id: str | None, as_json: bool, watch: bool) -> None:
    """Progress of a run (the latest one by default) per phase and season."""
    session = Session(obj)
    run_id = run_id or _latest_run(session)
    console = Console()
    while True:
        # Whoever looks first re-sends the tasks of a dead worker (an expired lease). Redis refusing
        # writes (a failover's read-only spell) skips that: progress is still shown, and the workers'
        # watchdog re-sends once a primary answers.
        try:
            expired = session.store.reap(run_id)
        except OUTAGE_ERRORS:
            expired = []
        if expired:
            engine.send(session.store, session.dispatcher, run_id, expired)
        info = engine.progress(session.store, run_id, session.settings.stall_after)
        if info is None:
            raise BadInput(f"no run {run_id} in Redis", hint=f"if Redis lost it: `backfill resume {run_id}`")
        limit = session.throttle_limit()
        info["trigger_pauses"] = session.trigger_pauses(run_id)
        from backfill.alerts.notify import alert_status

        info["alerts"] = alert_status(session.store, run_id)
        if as_json:
            click.echo(json.dumps({**info, "throttle_limit": limit}, default=str))
        else:
            render_status(info, limit, console)
        if not watch or not waiting(info):
            return
        time.sleep(2.0)


@click.command("runs")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def runs(obj: CliContext, as_json: bool) -> None:
    """The runs Redis knows, newest first."""
    from backfill.superseded import superseded_by

    session = Session(obj)
    rows: list[dict[str, Any]] = []
    listed = session.store.list_runs()
    fixed = superseded_by(session.store, listed)
    for r in listed:
        states = session.store.states(r.run_id)
        partial = len(engine.partial_tasks(session.store, r.run_id, states))
        done = sum(1 for s in states.values() if s in (TaskStatus.success, TaskStatus.skipped))
        rows.append({"run_id": r.run_id, "status": r.status.value, "tasks": r.total, "done": done, "partial": partial,
                     "created_at": dt.datetime.fromtimestamp(r.created_at, dt.UTC).isoformat(timespec="seconds"),
                     "ranges": r.request.get("ranges"), "phases": r.request.get("phases"),
                     "superseded_by": fixed.get(r.run_id)})
    if as_json:
        click.echo(json.dumps(rows))
        return
    table = Table(show_edge=False)
    for col in ("run id", "status", "done", TaskStatus.partial, "created", "ranges", "phases"):
        table.add_column(col)
    for row in rows:
        ranges: list[list[str]] = row["ranges"] or []
        status = str(row["status"]) + (f" (superseded by {row['superseded_by']})" if row["superseded_by"] else "")
        table.add_row(str(row["run_id"]), status, f"{row['done']}/{row['tasks']}", str(row[TaskStatus.partial]),
                      str(row["created_at"]),
                      " ".join(f"{a}:{b}" for a, b in ranges), str(row["phases"] or "all"))
    Console().print(table)


@click.command("cancel")
@click.argument("run_id")
@click.option("--settle", type=click.FloatRange(0, 3600), default=30.0, show_default=True,
              help="Seconds to let running tasks finish before recording the run history.")
@click.option("--release-triggers", is_flag=True,
              help="Also release the trigger pauses kept over this run's incomplete writes.")
@click.pass_obj
def cancel(obj: CliContext, run_id: str, settle: float, release_triggers: bool) -> None:
    """Stop a run now: no task starts after this; queued ones are revoked.

    Tasks already running finish (their partition writes are atomic); once they settle, every
    finished task of the run is recorded in the run history, so `gaps` and `resume` see it.
    A downstream trigger stays paused while this run left writes of its phase or an earlier
    one incomplete (the live side would read them), and the output says until when; the other
    triggers are released. --release-triggers releases them all. To stop for a while and go
    on later, `backfill pause` keeps everything instead.
    """
    session = Session(obj)
    settled = session.store.get_run(run_id)
    if settled is not None and not settled.status.active:
        # Revoking again and rewriting its history would change a run that already ended; only
        # the trigger pauses a cancelled run kept are released, when asked.
        if release_triggers:
            released = engine.release_kept_triggers(session.store, run_id, session.triggers)
            click.echo(f"run {run_id} already ended {settled.status.value}; trigger pauses released "
                       f"(--release-triggers): {', '.join(released) or 'none were held'}")
            return
        click.echo(f"run {run_id} already ended {settled.status.value}; nothing to cancel, nothing changed")
        for p in session.trigger_pauses(run_id):
            click.echo(f"trigger {p['trigger']} stays paused until {p['until']} "
                       f"(`backfill cancel {run_id} --release-triggers` releases it)")
        return
    rec = engine.cancel(session.store, session.dispatcher, run_id, session.triggers,
                        release_triggers=release_triggers, settings=session.settings)
    click.echo(f"run {run_id} {rec.status.value}")
    kept = session.trigger_pauses(run_id)
    for p in kept:
        click.echo(f"trigger {p['trigger']} stays paused until {p['until']} (renewed while this run's earlier-phase "
                   f"writes are incomplete; `backfill resume {run_id}` completes them, "
                   f"`backfill cancel {run_id} --release-triggers` releases it)")
    if not kept:
        click.echo("trigger pauses released" + (" (--release-triggers)" if release_triggers else
                                                 ": no write the live side reads was left incomplete"))
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and any(
            s is TaskStatus.running for s in session.store.states(run_id).values()):
        time.sleep(0.2)
    running = sum(1 for s in session.store.states(run_id).values() if s is TaskStatus.running)
    rows = engine.record_finished(session.store, session.warehouse(), run_id)
    click.echo(f"recorded {rows} run-history row(s) of finished tasks"
               + (f"; {running} task(s) still running are not recorded (`backfill resume {run_id}` redoes them)"
                  if running else ""), err=True)


@click.command("retry")
@click.argument("run_id")
@wait_option
@click.pass_obj
def retry(obj: CliContext, run_id: str, wait: bool) -> None:
    """Run a finished run's failed, partial, blocked and revoked tasks again (after fixing the cause)."""
    session = Session(obj)
    record = session.store.get_run(run_id)
    if record is not None and record.status is RunStatus.cancelled:
        raise BadInput(f"run {run_id} was cancelled; retry redoes only the failed tasks of a run that ended",
                       hint=f"continue it with `backfill resume {run_id}`")
    n = engine.retry(session.store, session.dispatcher, run_id, session.triggers, session.settings,
                     observers=session.observers)
    click.echo(f"run {run_id}: retrying {n} failed/partial/blocked/revoked task(s)")
    if wait:
        wait_and_exit(session, run_id, Console(stderr=True))


@click.command("resume")
@click.argument("run_id")
@click.option("--accept", is_flag=True,
              help="A run paused by a season gate: go on to the next season without validating this one again.")
@click.option("--pipeline", default=None,
              help="Pipeline folder, only when Redis lost the run (its record names it otherwise).")
@wait_option
@click.pass_obj
def resume(obj: CliContext, run_id: str, accept: bool, pipeline: str | None, wait: bool) -> None:
    """Continue a paused run, or one whose queue or Redis state was lost; finished tasks are not redone.

    A run paused by a season gate is validated again first (after a fix by hand) and stays
    paused if that still fails; --accept goes on without it.
    """
    session = Session(obj)
    found = session.store.get_run(run_id)
    if found is not None:
        n = engine.resume(session.store, session.dispatcher, run_id, session.triggers, session.settings,
                          observers=session.observers, accept=accept, warehouse=lambda: session.warehouse())
        after = session.store.get_run(run_id)
        click.echo(f"run {run_id}: resumed {n} unfinished task(s)"
                   + (f" from a {found.pause_kind} pause" if found.status is RunStatus.paused else ""))
        if after is not None and after.status is RunStatus.paused:
            click.echo(f"run {run_id} waits: {after.pause_reason}", err=True)
    else:
        n = rebuild(obj, session, run_id, pipeline)
        click.echo(f"run {run_id}: rebuilt from run history; {n} task(s) still to do")
    if wait:
        wait_and_exit(session, run_id, Console(stderr=True))


def rebuild(obj: CliContext, session: Session, run_id: str, pipeline: str | None = None) -> int:
    """Redis lost the run: re-plan its stored request, skipping what the run history says succeeded.

    The run's ledger is in the pipeline's run-history table, so without Redis's record the folder
    comes from --pipeline (or the configured default); the ledger then names the run's own folder.
    """
    try:
        spec_default = obj.spec(pipeline)
    except SpecError as exc:
        raise BadInput(f"run {run_id} is not in Redis, and {exc.message}",
                       hint=f"pass the folder it was enqueued with: `backfill resume {run_id} --pipeline DIR`"
                       ) from None
    warehouse = session.warehouse()
    record = engine.load_request(warehouse, spec_default.run_history_table, run_id)
    if record is None:
        raise BadInput(f"run {run_id} is neither in Redis nor in the warehouse's run ledger",
                       hint="check the run id with `backfill runs`, or enqueue a new run")
    spec = obj.spec(record.pipeline)
    request = PlanRequest.from_json(record.request)
    plan, calendar = plan_from_warehouse(spec, warehouse, replace(request, force=False))
    if request.force:
        # A forced run redid everything: only this run's own successes count as done.
        history = RunHistory.of(warehouse, spec)
        mine = frozenset((r["processor_name"], r["data_date"]) for r in history.latest(run_id=run_id)
                         if r["status"] == TaskOutcome.success)
        plan = build_plan(spec, calendar, replace(request, completed=mine))
    record.seq = 1  # messages of the lost sequence, still in a worker's memory, are now stale
    if len(plan) == 0:
        session.store.create_run(replace(record, status=RunStatus.succeeded, finished_at=time.time()), [])
        return 0
    prepare_targets(spec, warehouse, plan)
    engine.start_run(session.store, session.dispatcher, plan, record, session.triggers, session.settings,
                     observers=session.observers)
    return len(plan)
