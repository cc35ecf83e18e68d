"""The orchestration logic of a run, free of Celery: start, settle, pump, finish, cancel, retry, resume.

Dispatch follows dependencies: a task is sent when its own upstream tasks have settled, so
the most recent season (first in priority) never waits at a barrier another season needed,
and workers never idle while anything is ready. At most `Settings.dispatch_window` tasks of
a run are in the broker at once; the rest wait in Redis, which keeps priorities meaningful
and makes a purged queue lose little. Every step is safe to run twice: redelivery is normal
with `acks_late`, so duplicates are expected, not exceptional.

A dead worker, a purged queue, a revoked or lost message can each leave a task that nobody
will run; `sweep` (each worker runs it every few seconds) re-sends tasks whose lease expired
and heals a run that made no progress for `stall_after` seconds with nothing running.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from backfill.errors import BackfillError, BadInput, RunConflict
from backfill.planner import Plan, Task
from backfill.planner.model import TaskKey
from backfill.runhistory import RowContext, RunHistory, build_rows
from backfill.settings import Settings
from backfill.spec import DEFAULT_RUN_HISTORY_TABLE, load_spec
from backfill.state import RunRecord, RunStatus, Settled, StateStore, TaskStatus
from backfill.state.base import now
from backfill.warehouse import Warehouse, schema

log = logging.getLogger(__name__)
TRIGGER_TTL_SECONDS = 3600.0
FLUSH_LOCK_SECONDS = 120.0
SETTLED_KINDS = (TaskStatus.succeeded, TaskStatus.failed, TaskStatus.revoked, TaskStatus.blocked)
RECORDED_KINDS = (*SETTLED_KINDS, TaskStatus.cancelled)
REVOKED_MESSAGE = "revoked through Celery (control revoke, Flower or the API)"
WarehouseSource = Callable[[], Warehouse | None]


class Dispatcher(Protocol):
    """How the engine sends work; `workers.tasks.CeleryDispatcher` is the real one."""

    def send(self, run_id: str, task_ids: Sequence[str], priorities: Sequence[int] | None = None) -> list[str]:
        """One `backfill.run_task(run_id, task_id)` message per task; returns the message ids.

        `priorities` (0 first, up to 9): the broker hands a worker the preferred season's
        messages before older ones already queued, so dependency order and season preference
        both hold with many messages in flight.
        """

    def revoke(self, queued_ids: Sequence[str]) -> None: ...


class TriggerPauser(Protocol):
    def pause(self, name: str, holder: str, ttl_seconds: float, reason: str = "") -> None: ...

    def renew(self, name: str, holder: str, ttl_seconds: float) -> bool: ...

    def release(self, name: str, holder: str) -> bool: ...


def new_run_id() -> str:
    return f"bf-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def task_keys(tasks: Iterable[Task]) -> list[TaskKey]:
    return [(t.processor, d) for t in tasks for d in t.dates]


def trigger_names(tasks: Iterable[Task]) -> list[str]:
    from backfill.triggers import triggers_for_phases

    return triggers_for_phases({t.phase for t in tasks})


def priority(task: Task, order: str) -> float:
    """Lower goes first: the season (most recent first under `recent-first`), then plan depth, then date.

    Depth before date keeps a season's upstream phases ahead of its downstream ones, so the
    critical path of the preferred season is never starved by its own leaves.
    """
    try:
        year = int(task.season[:4])
    except ValueError:
        year = 0
    season_rank = (3000 - year) if order == "recent-first" else year
    first = task.dates[0].toordinal() if task.dates else 0
    return season_rank * 1e9 + task.wave * 1e6 + (first % 1_000_000)


def _lock(store: StateStore, run_id: str, tasks: Sequence[Task]) -> None:
    """Lock every partition the tasks write; a lock left by a run that is no longer active is taken over."""
    keys = task_keys(tasks)
    for _ in range(3):
        holder = store.acquire_locks(run_id, keys)
        if holder is None:
            return
        other = store.get_run(holder)
        if other is not None and other.status.active:
            raise RunConflict(f"run {holder} is still running and writes some of the same partitions",
                              hint=f"wait for it (`backfill status {holder}`) or `backfill cancel {holder}`")
        store.release_locks(holder, keys)
    raise RunConflict("could not lock the partitions of this run", hint="try again")


def _pause_triggers(triggers: TriggerPauser | None, run_id: str, tasks: Sequence[Task]) -> None:
    if triggers is not None:
        for name in trigger_names(tasks):
            triggers.pause(name, run_id, TRIGGER_TTL_SECONDS, reason=f"backfill run {run_id}")


def _release_triggers(triggers: TriggerPauser | None, run_id: str, tasks: Iterable[Task]) -> None:
    if triggers is not None:
        for name in trigger_names(tasks):
            triggers.release(name, run_id)


def _order(store: StateStore, run_id: str) -> str:
    run = store.get_run(run_id)
    return str((run.request if run else {}).get("order", "recent-first"))


def send(store: StateStore, dispatcher: Dispatcher, run_id: str, task_ids: Sequence[str]) -> None:
    """Send messages for tasks already moved in flight (a crash between the two is what the watchdog heals)."""
    if task_ids:
        store.add_queued(run_id, dispatcher.send(run_id, task_ids, season_priorities(store, run_id, task_ids)))


def season_priorities(store: StateStore, run_id: str, task_ids: Sequence[str]) -> list[int]:
    """Broker priority per task: 0 for the preferred season (most recent under `recent-first`), 1 for
    the next, ... up to 9. Without it a downstream task of the preferred season, ready only once its
    upstream finished, would queue behind every older season's task sent before it."""
    run = store.get_run(run_id)
    ranked = [s for s in (run.seasons if run else "").split(",") if s]
    if not ranked:
        return [0] * len(task_ids)
    rank = {s: min(i, 9) for i, s in enumerate(ranked)}
    tasks = store.tasks_by_id(run_id, task_ids)
    return [rank.get(tasks[t].season, 9) if t in tasks else 9 for t in task_ids]


def start_run(store: StateStore, dispatcher: Dispatcher, plan: Plan, record: RunRecord,
              triggers: TriggerPauser | None = None, settings: Settings | None = None) -> RunRecord:
    """Lock, store, pause triggers, schedule every task, send the first window.

    Refuses (RunConflict) if another run owns a partition.
    """
    settings = settings or Settings()
    tasks = list(plan.tasks())
    _lock(store, record.run_id, tasks)
    record.total = len(tasks)
    record.waves = len(plan.waves)
    record.status = RunStatus.running
    record.progress_at = now()
    record.seasons = ",".join(sorted({t.season for t in tasks}, reverse=plan.request.order == "recent-first"))
    store.create_run(record, tasks)
    order = plan.request.order
    store.schedule(record.run_id, tasks, {t.id: priority(t, order) for t in tasks})
    _pause_triggers(triggers, record.run_id, tasks)
    send(store, dispatcher, record.run_id, store.pump(record.run_id, settings.dispatch_window))
    if not tasks:
        finish(store, record.run_id, None, triggers)
    return record


def dependents(tasks: Mapping[str, Task], roots: Iterable[str]) -> set[str]:
    """Every task that depends, directly or transitively, on one of `roots` (what a failure blocks)."""
    reverse: dict[str, list[str]] = {}
    for t in tasks.values():
        for d in t.depends_on:
            reverse.setdefault(d, []).append(t.id)
    out: set[str] = set()
    stack = list(roots)
    while stack:
        for child in reverse.get(stack.pop(), ()):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def blocks_dependents(status: TaskStatus, result: Mapping[str, Any] | None) -> bool:
    """A failed or revoked task blocks its dependents, unless it is a bisected batch whose
    `status_by_date` shows dates that did not fail: then the per-date defensive checks fail
    exactly the dependents whose windows include the bad dates."""
    if status is TaskStatus.revoked:
        return True
    if status is not TaskStatus.failed:
        return False
    by_date = (result or {}).get("status_by_date") or {}
    return not any(v != "failed" for v in by_date.values())


def settle(store: StateStore, dispatcher: Dispatcher, run_id: str, task_id: str, attempt: int | None,
           status: TaskStatus, result: Mapping[str, Any] | None, *, settings: Settings,
           warehouse: WarehouseSource, triggers: TriggerPauser | None = None, task: Task | None = None) -> Settled:
    """Record a task's outcome (one atomic step that also releases or blocks its children and
    pumps), send what became ready, write the run history when enough is pending, and finish
    the run when nothing is left. `attempt` None: a revoke, whatever attempt is current.
    `task`: the worker's copy, so recording it costs no extra read."""
    done = store.finish_task(run_id, task_id, attempt, status, result, settings.dispatch_window,
                             blocks_dependents(status, result), task)
    if done.outcome != "ok":
        return done
    send(store, dispatcher, run_id, done.send)
    from backfill.alerts.notify import on_task_settled  # before finish: a season's digest precedes the final one

    on_task_settled(store, run_id, task_id, status, result, settings, warehouse)
    if done.open <= 0:
        try:
            finish(store, run_id, warehouse(), triggers, settings=settings)
        except Exception:  # the watchdog's sweep finishes a run with nothing open
            log.warning("run %s: finishing failed; the watchdog will retry", run_id, exc_info=True)
    elif done.unflushed >= settings.history_flush_tasks or (
            done.oldest_unflushed is not None and now() - done.oldest_unflushed >= settings.history_flush_seconds):
        try:
            flush_history(store, warehouse(), run_id)
        except Exception:  # the next settle or the finish writes them; a task must not fail for it
            log.warning("run %s: run-history flush failed; will retry", run_id, exc_info=True)
    return done


# -- the run history: bulk writes, never one per task ---------------------------------------
@lru_cache(maxsize=32)
def _context(pipeline: str, mtime: float) -> RowContext:
    return RowContext.of(load_spec(pipeline))


def row_context(run: RunRecord | None) -> RowContext:
    """Phase names and target tables from the run's pipeline spec (read once per spec version)."""
    if run is None or not run.pipeline:
        return RowContext()
    path = Path(run.pipeline)
    file = path / "pipeline.yaml" if path.is_dir() else path
    try:
        return _context(str(path), file.stat().st_mtime)
    except (OSError, BackfillError):  # the rows still go out, with `phase_N` for the phase names
        log.warning("run %s: cannot read its pipeline %s for phase names", run.run_id, run.pipeline)
        return RowContext()


def history_rows_for(store: StateStore, run_id: str, task_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Run-history rows of settled (and cancelled) tasks: their results, or one row per date of
    a task that never ran, stamped now."""
    states = store.states(run_id)
    ids = [i for i in task_ids if states.get(i) in RECORDED_KINDS]
    tasks = store.tasks_by_id(run_id, ids)
    results = store.results_by_id(run_id, ids)
    causes = store.blocked_by(run_id, [i for i in ids if states[i] is TaskStatus.blocked])
    attempts = store.attempts(run_id)
    context = row_context(store.get_run(run_id))
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    for i in ids:
        task, state = tasks.get(i), states[i]
        if task is None:
            continue
        if state is TaskStatus.blocked:
            cause = causes.get(i, "task")
            rows += build_rows(task, run_id, context, outcome="blocked", category="dependency_gap",
                               message=f"upstream {cause} failed", at=now, parent=cause.split("@")[0])
        elif state is TaskStatus.revoked:
            rows += build_rows(task, run_id, context, outcome="revoked", attempt=attempts.get(i, 0),
                               category="revoked", message=REVOKED_MESSAGE, at=now)
        elif state is TaskStatus.cancelled:
            rows += build_rows(task, run_id, context, outcome="cancelled", attempt=attempts.get(i, 0),
                               message="the run was cancelled before this task ran", at=now)
        elif i in results:
            rows += build_rows(task, run_id, context, result=results[i], at=now)
    return rows


def flush_history(store: StateStore, warehouse: Warehouse | None, run_id: str, *, wait: float = 0.0) -> int:
    """Write the run-history rows of every settled task not written yet, in one bulk write.

    One flusher at a time (a lock in Redis); the write is a keyed upsert, so a repeated flush
    is harmless; the written ids are forgotten only after the write succeeded. `wait`: how
    long to wait for another flusher (the finish step must not skip the last rows).
    """
    if warehouse is None:
        return 0
    deadline = time.monotonic() + wait
    while not store.try_lock(run_id, "flush", FLUSH_LOCK_SECONDS):
        if time.monotonic() >= deadline:
            return 0
        time.sleep(0.1)
    try:
        pending = store.unflushed(run_id)
        if not pending:
            return 0
        run = store.get_run(run_id)
        table = run.history_table if run else DEFAULT_RUN_HISTORY_TABLE
        written = RunHistory(warehouse, table).write(history_rows_for(store, run_id, list(pending)))
        store.drop_unflushed(run_id, pending)
        return written
    finally:
        store.unlock(run_id, "flush")


def finish(store: StateStore, run_id: str, warehouse: Warehouse | None, triggers: TriggerPauser | None = None,
           takeover_after: float | None = 600.0, settings: Settings | None = None) -> RunStatus | None:
    """Close a run once: the last run-history rows, its status, then locks and trigger pauses go
    back, then the final alert digest (after the status, so a slow alert sink never holds the run)."""
    run = store.get_run(run_id)
    if run is None or not run.status.active or store.open_count(run_id) > 0:
        return None
    guard = f"finish:{run.seq}"
    if not store.claim(run_id, guard, takeover_after):
        return None
    try:
        flush_history(store, warehouse, run_id, wait=FLUSH_LOCK_SECONDS)
    except Exception:
        store.unclaim(run_id, guard)
        raise
    states = store.states(run_id)
    ok = all(s in (TaskStatus.succeeded, TaskStatus.skipped) for s in states.values())
    status = RunStatus.succeeded if ok else RunStatus.failed
    if ok and partial_tasks(store, run_id, states):
        status = RunStatus.partial
    store.update_run(run_id, status=status, finished_at=now())
    tasks = store.tasks(run_id)
    store.release_locks(run_id, task_keys(tasks.values()))
    _release_triggers(triggers, run_id, tasks.values())
    store.deactivate(run_id)
    store.complete(run_id, guard)
    from backfill.alerts.notify import on_run_finished

    on_run_finished(store, run_id, settings or Settings(), lambda: warehouse)
    return status


def cancel(store: StateStore, dispatcher: Dispatcher, run_id: str, triggers: TriggerPauser | None = None) -> RunRecord:
    """Stop new work at once: the flag first (tasks check it atomically before starting), then revoke."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis", hint="`backfill runs` lists the known runs")
    if run.status.active:
        store.update_run(run_id, status=RunStatus.cancelled, cancelled_at=now(), finished_at=now())
    store.deactivate(run_id)
    states = store.states(run_id)
    store.set_states(run_id, {i: TaskStatus.cancelled for i, s in states.items() if s == TaskStatus.pending})
    dispatcher.revoke(store.queued(run_id))
    tasks = store.tasks(run_id)
    store.release_locks(run_id, task_keys(tasks.values()))
    _release_triggers(triggers, run_id, tasks.values())
    return store.get_run(run_id) or run


def record_finished(store: StateStore, warehouse: Warehouse, run_id: str) -> int:
    """Write the run history of every settled task of the run, in one bulk write.

    A cancelled run never reaches its finish step, so the tasks that settled since the last
    flush would otherwise be known only to Redis. The write is a keyed upsert, so rows a
    flush already wrote are rewritten identically, never duplicated. Returns rows written.
    """
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis", hint="`backfill runs` lists the known runs")
    states = store.states(run_id)
    rows = history_rows_for(store, run_id, [i for i, s in states.items() if s in RECORDED_KINDS])
    return RunHistory(warehouse, run.history_table).write(rows)


def _restart(store: StateStore, dispatcher: Dispatcher, run: RunRecord, chosen: Sequence[Task],
             triggers: TriggerPauser | None, settings: Settings) -> int:
    """Reset `chosen` to pending, recount what each waits for, and pump."""
    order = str(run.request.get("order", "recent-first"))
    store.update_run(run.run_id, seq=run.seq + 1, status=RunStatus.running, finished_at="", cancelled_at="",
                     progress_at=now())
    store.schedule(run.run_id, chosen, {t.id: priority(t, order) for t in chosen})
    _pause_triggers(triggers, run.run_id, chosen)
    send(store, dispatcher, run.run_id, store.pump(run.run_id, settings.dispatch_window))
    return len(chosen)


def retry(store: StateStore, dispatcher: Dispatcher, run_id: str, triggers: TriggerPauser | None = None,
          settings: Settings | None = None) -> int:
    """Run the failed, blocked, revoked and partial tasks again (after a fix); returns how many."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis", hint=f"`backfill resume {run_id}` rebuilds it from run history")
    if run.status.active:
        raise BadInput(f"run {run_id} is still running", hint="retry it once it has finished")
    states = store.states(run_id)
    tasks = store.tasks(run_id)
    partial = partial_tasks(store, run_id, states)
    chosen = [tasks[i] for i, s in states.items()
              if s in (TaskStatus.failed, TaskStatus.blocked, TaskStatus.revoked) or i in partial]
    if not chosen:
        raise BadInput(f"run {run_id} has no failed, blocked, revoked or partial tasks to retry")
    _lock(store, run_id, chosen)
    from backfill.alerts.notify import on_retry  # before any retried task can settle

    on_retry(store, run_id, run.seq + 1)
    return _restart(store, dispatcher, run, chosen, triggers, settings or Settings())


def resume(store: StateStore, dispatcher: Dispatcher, run_id: str, triggers: TriggerPauser | None = None,
           settings: Settings | None = None) -> int:
    """Continue a run Redis still knows but whose queue was lost: every unfinished task is sent
    again, except one running under a live lease (its worker is alive and will settle it)."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis")
    settings = settings or Settings()
    store.reap(run_id)
    states = store.states(run_id)
    tasks = store.tasks(run_id)
    chosen = [tasks[i] for i, s in states.items() if s is TaskStatus.pending or
              (run.status is RunStatus.cancelled and s == TaskStatus.cancelled)]
    if not chosen:
        if not any(s is TaskStatus.running for s in states.values()) and run.status.active:
            finish(store, run_id, None, triggers)
        return 0
    _lock(store, run_id, chosen)
    return _restart(store, dispatcher, run, chosen, triggers, settings)


# -- the watchdog: expired leases, stalled runs --------------------------------------------
def reap(store: StateStore, dispatcher: Dispatcher, run_id: str) -> int:
    """Re-send the running tasks whose lease expired (their worker died); returns how many."""
    ids = store.reap(run_id)
    if ids:
        log.warning("run %s: lease expired for %d running task(s); re-sending %s", run_id, len(ids),
                    ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else ""))
        send(store, dispatcher, run_id, ids)
    return len(ids)


def stall(store: StateStore, run_id: str, stall_after: float, run: RunRecord | None = None) -> dict[str, Any] | None:
    """`{since, reason}` when an active run made no progress for `stall_after` seconds, has nothing
    running under a live lease, and no message sent (or retry due) within that time; else None."""
    run = run or store.get_run(run_id)
    if run is None or not run.status.active or store.open_count(run_id) <= 0:
        return None
    moment = now()
    last = max(run.progress_at or run.created_at, run.healed_at or 0.0, run.created_at)
    if moment - last < stall_after or store.live_leases(run_id) > 0:
        return None
    flight = store.inflight(run_id)
    if flight and max(flight.values()) > moment - stall_after:
        return None
    ready = len(store.ready(run_id))
    reason = (f"no task settled for {moment - last:.0f}s and none running; {len(flight)} sent but not picked up"
              f"{f', {ready} ready' if ready else ''} (queue purged, messages revoked or lost, or no worker)")
    return {"since": last, "reason": reason}


def heal(store: StateStore, dispatcher: Dispatcher, run_id: str, settings: Settings,
         warehouse: WarehouseSource = lambda: None, triggers: TriggerPauser | None = None) -> int | None:
    """Re-send a stalled run's in-flight tasks and pump its ready set, once (a Redis lock keeps a
    second watchdog out); records that it did. Returns the tasks re-sent, or None if not stalled."""
    found = stall(store, run_id, settings.stall_after)
    if found is None or not store.try_lock(run_id, "heal", settings.stall_after):
        return None
    flight = store.inflight(run_id)
    states = store.states(run_id)
    lost = [t for t in flight if states.get(t) is TaskStatus.pending]
    store.mark_sent(run_id, lost)
    send(store, dispatcher, run_id, lost)
    fresh = store.pump(run_id, settings.dispatch_window)
    send(store, dispatcher, run_id, fresh)
    run = store.get_run(run_id)
    store.update_run(run_id, healed=(run.healed if run else 0) + 1, healed_at=now(), heal_reason=found["reason"])
    log.warning("run %s stalled (%s): re-sent %d task(s), sent %d ready", run_id, found["reason"], len(lost),
                len(fresh))
    return len(lost) + len(fresh)


def sweep(store: StateStore, dispatcher: Dispatcher, settings: Settings, warehouse: WarehouseSource,
          triggers: TriggerPauser | None = None) -> dict[str, int]:
    """One watchdog pass over every active run: reap expired leases, heal stalls, finish what is done."""
    out = {"runs": 0, "resent": 0, "healed": 0, "finished": 0}
    for run_id in store.active_runs():
        run = store.get_run(run_id)
        if run is None or not run.status.active:
            store.deactivate(run_id)
            continue
        out["runs"] += 1
        out["resent"] += reap(store, dispatcher, run_id)
        if store.open_count(run_id) <= 0:
            if finish(store, run_id, warehouse(), triggers, settings=settings) is not None:
                out["finished"] += 1
            continue
        if heal(store, dispatcher, run_id, settings, warehouse, triggers) is not None:
            out["healed"] += 1
    return out


# -- the durable copy of each run's request, so `resume` works after Redis is lost --------
def ledger_table(history_table: str) -> str:
    return f"{history_table.split('.')[0]}.backfill_runs"


def record_request(warehouse: Warehouse, record: RunRecord) -> None:
    table = schema(ledger_table(record.history_table), None, ("run_id", "STRING", True), ("pipeline", "STRING"),
                   ("request", "JSON"), ("alerts", "STRING"), ("strict", "BOOL"), ("created_at", "TIMESTAMP"))
    warehouse.create_table(table)
    warehouse.insert_rows(table.name, [{
        "run_id": record.run_id, "pipeline": record.pipeline, "request": json.dumps(record.request),
        "alerts": record.alerts, "strict": record.strict,
        "created_at": dt.datetime.fromtimestamp(record.created_at, dt.UTC)}])


def load_request(warehouse: Warehouse, history_table: str, run_id: str) -> RunRecord | None:
    table = ledger_table(history_table)
    if not warehouse.table_exists(table):
        return None
    rows = warehouse.query(f"SELECT * FROM {table} WHERE run_id = @run_id", {"run_id": run_id})
    if not rows:
        return None
    r = rows[0]
    req = r["request"] if isinstance(r["request"], dict) else json.loads(r["request"])
    return RunRecord(run_id=run_id, pipeline=r["pipeline"], request=req, alerts=r["alerts"] or "digest",
                     strict=bool(r["strict"]), history_table=history_table)


# -- progress, derived from task states on every call (never stored, so never stale) ------
def partial_tasks(store: StateStore, run_id: str, states: Mapping[str, TaskStatus] | None = None) -> set[str]:
    """Tasks that settled as written but short of what was expected (their result says `partial`).

    Run state keeps them `succeeded` (their dependents may run: the rows are there), so they are
    told apart by their result, and shown and counted apart from clean successes.
    """
    states = store.states(run_id) if states is None else states
    done = [i for i, s in states.items() if s is TaskStatus.succeeded]
    return {i for i, r in store.results_by_id(run_id, done).items() if r.get("status") == "partial"}


def progress(store: StateStore, run_id: str, stall_after: float = 30.0) -> dict[str, Any] | None:
    """Counts per status overall and per (phase, season), rate, ETA, and whether the run is stalled.

    A stalled run has no ETA: a rate measured before it stopped would promise a finish that
    is not coming. Tasks waiting for a retry count as remaining.
    """
    run = store.get_run(run_id)
    if run is None:
        return None
    tasks = store.tasks(run_id)
    states = store.states(run_id)
    counts = {s.value: 0 for s in TaskStatus}
    groups: dict[tuple[int, str], dict[str, int]] = {}
    for tid, st in states.items():
        counts[st.value] += 1
        t = tasks.get(tid)
        if t is not None:
            g = groups.setdefault((t.phase, t.season), {s.value: 0 for s in TaskStatus})
            g[st.value] += 1
    results = store.results(run_id)
    partial = {i for i, r in results.items() if r.get("status") == "partial" and states.get(i) is TaskStatus.succeeded}
    counts["partial"] = len(partial)
    counts["succeeded"] -= len(partial)
    for tid in partial:
        t = tasks.get(tid)
        if t is not None:
            g = groups[(t.phase, t.season)]
            g["succeeded"] -= 1
            g["partial"] = g.get("partial", 0) + 1
    for g in groups.values():
        g.setdefault("partial", 0)
    done = counts["succeeded"] + counts["skipped"]
    settled = sum(counts[s.value] for s in TaskStatus if s.finished)
    moment = now()
    end = run.finished_at or moment
    elapsed = max(end - run.created_at, 1e-6)
    rate = (done + counts["partial"]) / elapsed
    remaining = len(states) - settled
    flight = store.inflight(run_id) if run.status.active else {}
    waiting_retry = sum(1 for t, due in flight.items() if due > moment and states.get(t) is TaskStatus.pending)
    stalled = stall(store, run_id, stall_after, run) if run.status.active else None
    failures = [{"task_id": tid, "category": r.get("error_category"), "message": r.get("error_message")}
                for tid, r in sorted(results.items()) if states.get(tid) == TaskStatus.failed]
    partials = [{"task_id": tid, "category": results[tid].get("error_category"),
                 "message": results[tid].get("error_message")} for tid in sorted(partial)]
    unresolved = sum(int(r.get("unresolved_players") or 0) for r in results.values())
    return {
        "run_id": run_id, "status": run.status.value, "pipeline": run.pipeline, "request": run.request,
        "created_at": run.created_at, "finished_at": run.finished_at, "cancelled_at": run.cancelled_at,
        "seq": run.seq, "waves": run.waves, "total": len(states), "done": done,
        "settled": settled, "counts": counts, "elapsed_seconds": round(elapsed, 1),
        "rate_per_minute": round(rate * 60, 2),
        "eta_seconds": round(remaining / rate, 1) if rate > 0 and run.status.active and not stalled else None,
        "in_flight": len(flight), "waiting_retry": waiting_retry,
        "progress_at": run.progress_at, "stalled": stalled,
        "healed": {"count": run.healed, "at": run.healed_at, "reason": run.heal_reason or None},
        "resent": run.resent,
        "by_phase_season": [{"phase": p, "season": s, **c} for (p, s), c in sorted(groups.items())],
        "failures": failures, "partials": partials, "unresolved_players": unresolved,
    }
