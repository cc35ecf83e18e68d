"""A run's lifecycle, free of Celery: start, settle, pump and send, finish, cancel, retry, resume.

Dispatch follows dependencies: a task is sent when its own upstream tasks have settled, so
the most recent season (first in priority) never waits at a barrier another season needed,
and workers never idle while anything is ready. At most `Settings.dispatch_window` tasks of
a run are in the broker at once; the rest wait in Redis, which keeps priorities meaningful
and makes a purged queue lose little. Every step is safe to run twice: redelivery is normal
with `acks_late`, so duplicates are expected, not exceptional.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from backfill.engine.dispatch import (
    Dispatcher,
    TriggerPauser,
    send,
    task_keys,
    trigger_names,
)
from backfill.engine.events import (
    NO_OBSERVERS,
    Observers,
    RetryStarted,
    RunFinished,
    SeasonComplete,
    TaskSettled,
    WarehouseSource,
)
from backfill.engine.history import FLUSH_LOCK_SECONDS, flush_history
from backfill.engine.holds import Clock, apply_window, gate, keep_triggers, utcnow
from backfill.errors import BadInput, RunConflict
from backfill.outcome import TaskOutcome
from backfill.planner import Plan, Task
from backfill.settings import Settings
from backfill.state import PauseKind, RunRecord, RunStatus, Settled, StateStore, TaskStatus
from backfill.state.base import now
from backfill.state.verdict import verdict_of
from backfill.warehouse import Warehouse

log = logging.getLogger(__name__)
# A run's trigger pause: a lease of an hour (Settings.trigger_lease_seconds), renewed by the
# watchdog (`holds.keep_triggers`); it expires by itself within the hour after a run dies.
TRIGGER_TTL_SECONDS = 3600.0


def new_run_id() -> str:
    return f"bf-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


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


def _release_triggers(triggers: TriggerPauser | None, run_id: str, tasks: Iterable[Task]) -> None:
    if triggers is not None:
        for name in trigger_names(tasks):
            triggers.release(name, run_id)


def start_run(store: StateStore, dispatcher: Dispatcher, plan: Plan, record: RunRecord,
              triggers: TriggerPauser | None = None, settings: Settings | None = None, *,
              observers: Observers = NO_OBSERVERS, clock: Clock = utcnow) -> RunRecord:
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
        finish(store, record.run_id, None, triggers, observers=observers)
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
    return not any(v != TaskOutcome.failed for v in by_date.values())


def settle(store: StateStore, dispatcher: Dispatcher, run_id: str, task_id: str, attempt: int | None,
           status: TaskStatus, result: Mapping[str, Any] | None, *, settings: Settings,
           warehouse: WarehouseSource, triggers: TriggerPauser | None = None, task: Task | None = None,
           observers: Observers = NO_OBSERVERS) -> Settled:
    """Record a task's outcome (one atomic step that also releases or blocks its children and
    pumps), send what became ready, tell the observers (the history flusher writes the run
    history when enough is pending), and finish the run when nothing is left. `attempt` None:
    a revoke, whatever attempt is current. `task`: the worker's copy, so recording it costs
    no extra read."""
    done = store.finish_task(run_id, task_id, attempt, status, result, settings.dispatch_window,
                             blocks_dependents(status, result), task)
    if done.outcome != "ok":
        return done
    send(store, dispatcher, run_id, done.send)
    try:  # before the observers: a closed gate's findings go into the season's digest
        gate(store, dispatcher, run_id, done.open, settings, warehouse)
    except Exception:  # the task's outcome is recorded; the watchdog's sweep validates the season again
        log.warning("run %s: season gate validation failed to run; the watchdog retries", run_id, exc_info=True)
    if len(observers):  # before finish: a season's digest precedes the final one
        _announce_settled(store, run_id, task_id, task, status, result, done, warehouse, observers)
    if done.open <= 0:
        try:
            finish(store, run_id, warehouse(), triggers, observers=observers)
        except Exception:  # the watchdog's sweep finishes a run with nothing open
            log.warning("run %s: finishing failed; the watchdog will retry", run_id, exc_info=True)
    return done


def _announce_settled(store: StateStore, run_id: str, task_id: str, task: Task | None, status: TaskStatus,
                      result: Mapping[str, Any] | None, done: Settled, warehouse: WarehouseSource,
                      observers: Observers) -> None:
    """Task settled, then season complete if it was the season's last. The outcome is recorded
    already: a failed read here (Redis going away) costs the events, never the settle."""
    try:
        run = store.get_run(run_id)
        if run is None:
            return
        observers.task_settled(TaskSettled(store, run, task_id, task, status, result, done, warehouse))
        if not observers.wants("on_season_complete"):
            return
        task = task if task is not None and task.id == task_id else store.task(run_id, task_id)
        if task is not None and store.season_settled(run_id, run.seq, task.season):
            observers.season_complete(SeasonComplete(store, run, task.season, warehouse))
    except Exception:
        log.warning("run %s: telling observers task %s settled failed", run_id, task_id, exc_info=True)


def finish(store: StateStore, run_id: str, warehouse: Warehouse | None, triggers: TriggerPauser | None = None,
           takeover_after: float | None = 600.0, *, observers: Observers = NO_OBSERVERS) -> RunStatus | None:
    """Close a run once: the last run-history rows, its status, then locks and trigger pauses go
    back, then the run-finished event (after the status, so a slow alert sink never holds the run)."""
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
    status = verdict_of(store, run_id)
    store.update_run(run_id, status=status, finished_at=now())
    tasks = store.tasks(run_id)
    store.release_locks(run_id, task_keys(tasks.values()))
    _release_triggers(triggers, run_id, tasks.values())
    store.deactivate(run_id)
    store.complete(run_id, guard)
    observers.run_finished(RunFinished(store, run_id, status, warehouse))
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


def _restart(store: StateStore, dispatcher: Dispatcher, run: RunRecord, chosen: Sequence[Task],
             triggers: TriggerPauser | None, settings: Settings, clock: Clock = utcnow) -> int:
    """Reset `chosen` to pending, recount what each waits for, and pump (inside the run's window)."""
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
          settings: Settings | None = None, *, observers: Observers = NO_OBSERVERS) -> int:
    """Run the failed, blocked, revoked and partial tasks again (after a fix); returns how many."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis", hint=f"`backfill resume {run_id}` rebuilds it from run history")
    if run.status is RunStatus.running:
        raise BadInput(f"run {run_id} is still running", hint="retry it once it has finished, or `backfill pause` it")
    states = store.states(run_id)
    tasks = store.tasks(run_id)
    chosen = [tasks[i] for i, s in states.items()
              if s in (TaskStatus.failed, TaskStatus.blocked, TaskStatus.revoked, TaskStatus.partial)]
    if not chosen:
        raise BadInput(f"run {run_id} has no failed, blocked, revoked or partial tasks to retry")
    _lock(store, run_id, chosen)
    observers.retry(RetryStarted(store, run_id, run.seq + 1, len(chosen)))  # before any retried task can settle
    return _restart(store, dispatcher, run, chosen, triggers, settings or Settings())


def resume(store: StateStore, dispatcher: Dispatcher, run_id: str, triggers: TriggerPauser | None = None,
           settings: Settings | None = None, *, observers: Observers = NO_OBSERVERS, clock: Clock = utcnow,
           accept: bool = False, warehouse: WarehouseSource = lambda: None) -> int:
    """Continue a run: a paused one from where it stopped (what was ready is sent, inside its
    window); one Redis still knows but whose queue was lost by sending every unfinished task
    again, except one running under a live lease (its worker is alive and will settle it)."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis")
    settings = settings or Settings()
    if run.status is RunStatus.paused:
        return _unpause(store, dispatcher, run, triggers, settings, observers, clock, accept, warehouse)
    store.reap(run_id)
    states = store.states(run_id)
    tasks = store.tasks(run_id)
    chosen = [tasks[i] for i, s in states.items() if s is TaskStatus.pending or
              (run.status is RunStatus.cancelled and s == TaskStatus.cancelled)]
    if not chosen:  # the last finish failed (the warehouse was unreachable): its history rows are still due
        if not any(s is TaskStatus.running for s in states.values()) and run.status.active:
            finish(store, run_id, warehouse(), triggers, observers=observers)
        return 0
    _lock(store, run_id, chosen)
    return _restart(store, dispatcher, run, chosen, triggers, settings)


def _unpause(store: StateStore, dispatcher: Dispatcher, run: RunRecord, triggers: TriggerPauser | None,
             settings: Settings, observers: Observers, clock: Clock, accept: bool,
             warehouse: WarehouseSource) -> int:
    """Lift any pause; a complete gated season is validated again first (fixed by hand, or its gate
    closed while the run was paused by hand), `accept` lets the next season through without it."""
    from backfill import gates

    run_id = run.run_id
    if accept and gates.is_gate_paused(run):
        gates.advance(store, run, f"season {run.gate_season} accepted without validation (--accept)")
    store.unpause_run(run_id, list(PauseKind))
    if gate(store, dispatcher, run_id, store.open_count(run_id), settings, warehouse, force=True) is False:
        return 0  # still failing: paused again, saying why
    ids = store.reap(run_id)
    send(store, dispatcher, run_id, ids)
    keep_triggers(store, run_id, triggers, settings, force=True)
    resumed = store.get_run(run_id)
    if resumed is not None:
        apply_window(store, dispatcher, resumed, settings, clock())
    send(store, dispatcher, run_id, store.pump(run_id, settings.dispatch_window))
    if store.open_count(run_id) <= 0:
        finish(store, run_id, warehouse(), triggers, observers=observers)
    return sum(1 for s in store.states(run_id).values() if not s.finished)
