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
from typing import Any, Protocol

from backfill.errors import BadInput, RunConflict
from backfill.planner import Plan, Task
from backfill.planner.model import TaskKey
from backfill.runhistory import RunHistory
from backfill.settings import Settings
from backfill.spec import DEFAULT_RUN_HISTORY_TABLE
from backfill.state import PauseKind, RunRecord, RunStatus, Settled, StateStore, TaskStatus
from backfill.state.base import now
from backfill.warehouse import Warehouse, schema
from backfill.windows import ExecutionWindow

log = logging.getLogger(__name__)
# A run's trigger pause: a lease of an hour (Settings.trigger_lease_seconds), renewed by the
# watchdog every minute (Settings.trigger_renew_seconds) while the run has an unsettled task of
# that phase or an earlier one; it expires by itself within the hour after a run dies.
TRIGGER_TTL_SECONDS = 3600.0
TRIGGER_RENEW_SECONDS = 60.0
Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
FLUSH_LOCK_SECONDS = 120.0
SETTLED_KINDS = (TaskStatus.succeeded, TaskStatus.failed, TaskStatus.revoked, TaskStatus.blocked)
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
    from backfill.gates import season_rank

    first = task.dates[0].toordinal() if task.dates else 0
    return season_rank(task.season, order) * 1e9 + task.wave * 1e6 + (first % 1_000_000)


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


def _pause_triggers(triggers: TriggerPauser | None, run_id: str, tasks: Sequence[Task],
                    ttl: float = TRIGGER_TTL_SECONDS) -> None:
    if triggers is not None:
        for name in trigger_names(tasks):
            triggers.pause(name, run_id, ttl, reason=f"backfill run {run_id}")


def trigger_holds(store: StateStore, run_id: str, run: RunRecord) -> tuple[list[str], list[str]]:
    """(keep, release): the run's triggers it must hold, and the ones it may let go.

    `phase{N}->phase{N+1}` is held while the run has a task of phase N or earlier that is not
    settled (an earlier phase feeds phase N's windows too). After a cancel, "settled" is not
    enough: a cancelled, failed or blocked task of those phases is an incomplete write the
    live side's windows would read, so the pause is kept until the writes are complete
    (`resume`) or someone releases it (`cancel --release-triggers`, `triggers resume --all`).
    """
    tasks = store.tasks(run_id)
    states = store.states(run_id)
    if run.status is RunStatus.cancelled:
        open_phases = {t.phase for i, t in tasks.items()
                       if states.get(i) not in (TaskStatus.succeeded, TaskStatus.skipped)}
    else:
        open_phases = {t.phase for i, t in tasks.items() if i in states and not states[i].finished}
    low = min(open_phases, default=None)
    names = {t.phase: n for t in tasks.values() for n in trigger_names([t])}
    keep = [names[p] for p in sorted(names) if low is not None and low <= p]
    return keep, [names[p] for p in sorted(names) if names[p] not in keep]


def keep_triggers(store: StateStore, run_id: str, triggers: TriggerPauser | None, settings: Settings,
                  run: RunRecord | None = None, *, force: bool = False) -> list[str] | None:
    """Renew the pauses the run must hold, release the others; at most once per
    `trigger_renew_seconds` per run across every watchdog (a Redis mutex), unless `force`.

    Only renews: a pause someone force-released (`triggers resume --all`) stays released, as
    the operator asked. Returns the triggers still held, or None when skipped (renewed lately).
    """
    run = run or store.get_run(run_id)
    if triggers is None or run is None:
        return None
    if not force and not store.try_lock(run_id, "triggers", settings.trigger_renew_seconds * 0.9):
        return None
    keep, release = trigger_holds(store, run_id, run)
    held = [name for name in keep if triggers.renew(name, run_id, settings.trigger_lease_seconds)]
    for name in release:
        triggers.release(name, run_id)
    return held


def window_of(run: RunRecord) -> ExecutionWindow | None:
    data = run.request.get("window")
    return ExecutionWindow.from_json(data) if data else None


def apply_window(store: StateStore, dispatcher: Dispatcher, run: RunRecord, settings: Settings,
                 at: dt.datetime) -> str | None:
    """Hold a windowed run to its window at `at`: pause it when the window is shut, resume it
    (and send what is ready) when it opens. Returns "paused", "resumed" or None (nothing to do).

    A pause by hand or by a gate is never lifted here: only its own kind.
    """
    window = window_of(run)
    if window is None:
        return None
    if window.is_open(at):
        if run.status is RunStatus.paused and run.pause_kind == PauseKind.window.value:
            if store.unpause_run(run.run_id, [PauseKind.window]):
                send(store, dispatcher, run.run_id, store.pump(run.run_id, settings.dispatch_window))
                log.info("run %s: its window %s opened; resumed", run.run_id, window.describe())
                return "resumed"
        return None
    if run.status is RunStatus.running:
        opens = window.next_open(at).astimezone(window.zone)
        reason = f"outside its window {window.describe()}; opens {opens:%a %Y-%m-%d %H:%M} {window.tz}"
        if store.pause_run(run.run_id, PauseKind.window, "window", reason, at.timestamp()):
            log.info("run %s: %s", run.run_id, reason)
            return "paused"
    return None


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
              triggers: TriggerPauser | None = None, settings: Settings | None = None,
              clock: Clock = utcnow) -> RunRecord:
    """Lock, store, pause triggers, schedule every task, send the first tasks (none when the
    run's execution window is shut: it starts paused, and the watchdog resumes it at opening).

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
    if record.request.get("gate"):
        from backfill.gates import arm

        arm(record, tasks, plan.request.order)
    store.create_run(record, tasks)
    order = plan.request.order
    store.schedule(record.run_id, tasks, {t.id: priority(t, order) for t in tasks})
    _pause_triggers(triggers, record.run_id, tasks, settings.trigger_lease_seconds)
    apply_window(store, dispatcher, record, settings, clock())
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
    try:
        gate(store, dispatcher, run_id, done.open, settings, warehouse)
    except Exception:  # the task's outcome is recorded; the watchdog's sweep validates the season again
        log.warning("run %s: season gate validation failed to run; the watchdog retries", run_id, exc_info=True)
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


def gate(store: StateStore, dispatcher: Dispatcher, run_id: str, open_count: int, settings: Settings,
         warehouse: WarehouseSource, *, force: bool = False) -> str | None:
    """A gated run whose gated season just completed: validate it, then let the next season
    through or pause the run (`backfill.gates`). Once per season and sequence (a claim), unless
    `force` (a `resume` after a fix by hand). Returns "passed", "failed" or None (nothing to do)."""
    from backfill import gates

    run = store.get_run(run_id)
    if run is None or not gates.due(run, open_count) or not gates.season_done(store, run):
        return None
    guard = f"gate:{run.seq}:{run.gate_season}"
    if not force and not store.claim(run_id, guard, 600.0):
        return None
    wh = warehouse()
    if wh is None:
        store.unclaim(run_id, guard)
        return None
    try:
        flush_history(store, wh, run_id, wait=FLUSH_LOCK_SECONDS)  # success rates read the run history
        passed, summary, findings = gates.validate_season(store, run, wh)
    except Exception:
        store.unclaim(run_id, guard)
        raise
    if passed:
        gates.advance(store, run, summary)
        send(store, dispatcher, run_id, store.pump(run_id, settings.dispatch_window))
        log.info("run %s: %s; the next season starts", run_id, summary)
    else:
        gates.close(store, run, summary, findings, now())
    store.complete(run_id, guard)
    return "passed" if passed else "failed"


# -- the run history: bulk writes, never one per task ---------------------------------------
def _plain_rows(task: Task, run_id: str, status: str, attempt: int, category: str | None,
                message: str | None) -> list[dict[str, Any]]:
    stamp = dt.datetime.now(dt.UTC)
    return [{"processor_name": task.processor, "phase": task.phase, "data_date": d, "season": task.season,
             "run_id": run_id, "task_id": task.id, "status": status, "attempt": attempt, "records_processed": 0,
             "duration_seconds": 0.0, "started_at": None, "finished_at": stamp, "error_category": category,
             "error_message": message, "warnings": [], "backfill_mode": True,
             "bootstrap": task.bootstrap, "wave": task.wave} for d in task.dates]


def _result_rows(result: Mapping[str, Any], task: Task, run_id: str) -> list[dict[str, Any]]:
    if result.get("noop"):
        return _plain_rows(task, run_id, "success", int(result.get("attempt", 1)), None, None)
    from backfill.executor import TaskResult, history_rows

    return history_rows(TaskResult.from_json(dict(result)), task, run_id, task.wave)


def history_rows_for(store: StateStore, run_id: str, task_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Run-history rows of settled tasks: their results, or a blocked/revoked row per date."""
    states = store.states(run_id)
    ids = [i for i in task_ids if states.get(i) in SETTLED_KINDS]
    tasks = store.tasks_by_id(run_id, ids)
    results = store.results_by_id(run_id, ids)
    causes = store.blocked_by(run_id, [i for i in ids if states[i] is TaskStatus.blocked])
    attempts = store.attempts(run_id)
    rows: list[dict[str, Any]] = []
    for i in ids:
        task, state = tasks.get(i), states[i]
        if task is None:
            continue
        if state is TaskStatus.blocked:
            rows += _plain_rows(task, run_id, "blocked", 0, "dependency_gap",
                                f"upstream {causes.get(i, 'task')} failed")
        elif state is TaskStatus.revoked:
            rows += _plain_rows(task, run_id, "revoked", attempts.get(i, 0), "revoked",
                                "revoked through Celery (control revoke, Flower or the API)")
        elif i in results:
            rows += _result_rows(results[i], task, run_id)
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


def cancel(store: StateStore, dispatcher: Dispatcher, run_id: str, triggers: TriggerPauser | None = None,
           *, release_triggers: bool = False, settings: Settings | None = None) -> RunRecord:
    """Stop new work at once: the flag first (tasks check it atomically before starting), then revoke.

    Trigger pauses: a trigger whose earlier-phase writes this run left incomplete stays paused
    (the watchdog renews it; `trigger_holds` says which) until `resume` completes them or it is
    released; `release_triggers` releases every one of them now.
    """
    settings = settings or Settings()
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis", hint="`backfill runs` lists the known runs")
    if run.status.active:
        store.update_run(run_id, status=RunStatus.cancelled, cancelled_at=now(), finished_at=now())
    states = store.states(run_id)
    store.set_states(run_id, {i: TaskStatus.cancelled for i, s in states.items() if s == TaskStatus.pending})
    dispatcher.revoke(store.queued(run_id))
    tasks = store.tasks(run_id)
    store.release_locks(run_id, task_keys(tasks.values()))
    held: list[str] | None = None
    if not release_triggers and triggers is not None:
        held = keep_triggers(store, run_id, triggers, settings, store.get_run(run_id), force=True)
    if held:
        store.activate(run_id)  # the watchdog keeps renewing them, and lets go once released
    else:
        store.deactivate(run_id)
        _release_triggers(triggers, run_id, tasks.values())
    return store.get_run(run_id) or run


def release_kept_triggers(store: StateStore, run_id: str, triggers: TriggerPauser | None) -> list[str]:
    """Release the trigger pauses a cancelled run kept over its incomplete writes; returns the names it held."""
    tasks = store.tasks(run_id)
    released = [name for name in trigger_names(tasks.values())
                if triggers is not None and triggers.release(name, run_id)]
    store.deactivate(run_id)
    return released


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
    rows = history_rows_for(store, run_id, [i for i, s in states.items() if s in SETTLED_KINDS])
    return RunHistory(warehouse, run.history_table).write(rows)


def _restart(store: StateStore, dispatcher: Dispatcher, run: RunRecord, chosen: Sequence[Task],
             triggers: TriggerPauser | None, settings: Settings, clock: Clock = utcnow) -> int:
    """Reset `chosen` to pending, recount what each waits for, and pump."""
    order = str(run.request.get("order", "recent-first"))
    store.update_run(run.run_id, seq=run.seq + 1, status=RunStatus.running, finished_at="", cancelled_at="",
                     progress_at=now(), paused_at="", paused_by="", pause_kind="", pause_reason="")
    store.schedule(run.run_id, chosen, {t.id: priority(t, order) for t in chosen})
    _pause_triggers(triggers, run.run_id, chosen, settings.trigger_lease_seconds)
    restarted = store.get_run(run.run_id)
    if restarted is not None:
        apply_window(store, dispatcher, restarted, settings, clock())
    send(store, dispatcher, run.run_id, store.pump(run.run_id, settings.dispatch_window))
    return len(chosen)


def retry(store: StateStore, dispatcher: Dispatcher, run_id: str, triggers: TriggerPauser | None = None,
          settings: Settings | None = None) -> int:
    """Run the failed, blocked, revoked and partial tasks again (after a fix); returns how many."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis", hint=f"`backfill resume {run_id}` rebuilds it from run history")
    if run.status is RunStatus.running:
        raise BadInput(f"run {run_id} is still running", hint="retry it once it has finished, or `backfill pause` it")
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


def pause(store: StateStore, run_id: str, by: str, reason: str = "") -> RunRecord:
    """Pause a run by hand: running tasks finish, nothing new starts, its trigger pauses and
    partition locks are kept, the watchdog does not call it stalled. `resume` continues it."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis", hint="`backfill runs` lists the known runs")
    if not run.status.active:
        raise BadInput(f"run {run_id} is {run.status.value}, not running",
                       hint="only a running run can be paused; `backfill retry` or `resume` restarts a finished one")
    if run.status is RunStatus.paused and run.pause_kind == PauseKind.manual.value:
        return run
    store.pause_run(run_id, PauseKind.manual, by, reason or "paused by hand", now())
    return store.get_run(run_id) or run


def resume(store: StateStore, dispatcher: Dispatcher, run_id: str, triggers: TriggerPauser | None = None,
           settings: Settings | None = None, *, clock: Clock = utcnow, accept: bool = False,
           warehouse: WarehouseSource = lambda: None) -> int:
    """Continue a run: a paused one from where it stopped (what was ready is sent, inside its
    window); one Redis still knows but whose queue was lost by sending every unfinished task
    again, except one running under a live lease (its worker is alive and will settle it)."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis")
    settings = settings or Settings()
    if run.status is RunStatus.paused:
        from backfill import gates

        if accept and gates.is_gate_paused(run):
            gates.advance(store, run, f"season {run.gate_season} accepted without validation (--accept)")
        store.unpause_run(run_id, list(PauseKind))
        # A gated season that is complete is validated again (fixed by hand, or its gate closed while
        # the run was paused by hand): still failing pauses it again, saying why.
        if gate(store, dispatcher, run_id, store.open_count(run_id), settings, warehouse, force=True) == "failed":
            return 0
        reap(store, dispatcher, run_id)
        keep_triggers(store, run_id, triggers, settings, force=True)
        resumed = store.get_run(run_id)
        if resumed is not None:
            apply_window(store, dispatcher, resumed, settings, clock())
        sent = store.pump(run_id, settings.dispatch_window)
        send(store, dispatcher, run_id, sent)
        if store.open_count(run_id) <= 0:
            finish(store, run_id, None, triggers, settings=settings)
        return sum(1 for s in store.states(run_id).values() if not s.finished)
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
    if run is None or not run.status.dispatching or store.open_count(run_id) <= 0:
        return None  # a paused run waits on purpose: it is not stalled
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
          triggers: TriggerPauser | None = None, clock: Clock = utcnow) -> dict[str, int]:
    """One watchdog pass over every active run: hold it to its window, renew its trigger pauses,
    reap expired leases, heal stalls, finish what is done. A cancelled run stays on the list only
    while it keeps a trigger paused over incomplete writes."""
    out = {"runs": 0, "resent": 0, "healed": 0, "finished": 0}
    for run_id in store.active_runs():
        run = store.get_run(run_id)
        if run is not None and run.status is RunStatus.cancelled:
            if triggers is None or keep_triggers(store, run_id, triggers, settings, run) == []:
                store.deactivate(run_id)
            continue
        if run is None or not run.status.active:
            store.deactivate(run_id)
            continue
        out["runs"] += 1
        apply_window(store, dispatcher, run, settings, clock())
        keep_triggers(store, run_id, triggers, settings, run)
        if run.gate_season and run.status.dispatching:
            try:  # a gate whose validation did not run (it raised, or its worker died mid-way)
                gate(store, dispatcher, run_id, store.open_count(run_id), settings, warehouse)
            except Exception:
                log.warning("run %s: season gate validation failed to run", run_id, exc_info=True)
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
    window = window_of(run)
    eta: float | None = None
    if rate > 0 and run.status.dispatching and not stalled:
        eta = remaining / rate
        if window is not None:  # the work left, spread over the windows still to come
            at = dt.datetime.fromtimestamp(moment, dt.UTC)
            eta = (window.finish(dt.timedelta(seconds=eta), at)[1] - at).total_seconds()
    paused = ({"since": run.paused_at, "by": run.paused_by, "kind": run.pause_kind, "reason": run.pause_reason}
              if run.status is RunStatus.paused else None)
    hours = None
    if window is not None:
        at = dt.datetime.fromtimestamp(moment, dt.UTC)
        hours = {**window.to_json(), "open": window.is_open(at),
                 "opens": window.next_open(at).isoformat(timespec="seconds"),
                 "closes": window.next_close(at).isoformat(timespec="seconds")}
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
        "eta_seconds": round(eta, 1) if eta is not None else None, "paused": paused, "window": hours,
        "in_flight": len(flight), "waiting_retry": waiting_retry,
        "progress_at": run.progress_at, "stalled": stalled,
        "healed": {"count": run.healed, "at": run.healed_at, "reason": run.heal_reason or None},
        "resent": run.resent,
        "by_phase_season": [{"phase": p, "season": s, **c} for (p, s), c in sorted(groups.items())],
        "failures": failures, "partials": partials, "unresolved_players": unresolved,
    }
