"""The orchestration logic of a run, free of Celery: start, checkpoint, finish, cancel, retry, resume.

Celery is one way to carry messages; the engine only needs a `Dispatcher` that can send a
wave (as a chord whose callback is the checkpoint), a delayed checkpoint, and a finish, and
revoke queued work. Every step here is safe to run twice: redelivery is normal with
`acks_late`, so duplicates are expected, not exceptional.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from backfill.errors import BadInput, RunConflict
from backfill.planner import Plan, Task
from backfill.planner.model import TaskKey
from backfill.runhistory import RunHistory
from backfill.state import RunRecord, RunStatus, StateStore, TaskStatus
from backfill.state.base import now
from backfill.warehouse import Warehouse, schema

TRIGGER_TTL_SECONDS = 3600.0
CHECKPOINT_POLL_SECONDS = 2.0


class Dispatcher(Protocol):
    """How the engine sends work; `workers.tasks.CeleryDispatcher` is the real one."""

    def send_wave(self, run_id: str, seq: int, wave: int, task_ids: Sequence[str]) -> list[str]:
        """Send the tasks as one chord whose callback checkpoints (run, seq, wave); return queued ids."""

    def send_checkpoint(self, run_id: str, seq: int, wave: int, countdown: float) -> None: ...

    def send_finish(self, run_id: str, seq: int) -> None: ...

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


def start_run(store: StateStore, dispatcher: Dispatcher, plan: Plan, record: RunRecord,
              triggers: TriggerPauser | None = None) -> RunRecord:
    """Lock, store, pause triggers, send wave 0. Refuses (RunConflict) if another run owns a partition."""
    tasks = list(plan.tasks())
    _lock(store, record.run_id, tasks)
    record.total = len(tasks)
    record.waves = len(plan.waves)
    record.status = RunStatus.running
    store.create_run(record, tasks)
    store.set_waves(record.run_id, record.seq, [[t.id for t in w] for w in plan.waves if w])
    _pause_triggers(triggers, record.run_id, tasks)
    dispatch(store, dispatcher, record.run_id, record.seq, 0)
    return record


def dispatch(store: StateStore, dispatcher: Dispatcher, run_id: str, seq: int, wave: int,
             states: Mapping[str, TaskStatus] | None = None) -> int | None:
    """Send the first wave from `wave` on that still has pending tasks, or finish; returns the wave sent."""
    states = store.states(run_id) if states is None else states
    while True:
        ids = store.get_wave(run_id, seq, wave)
        if not ids:
            dispatcher.send_finish(run_id, seq)
            return None
        todo = [i for i in ids if states.get(i) == TaskStatus.pending]
        if todo:
            store.update_run(run_id, wave=wave)
            store.add_queued(run_id, dispatcher.send_wave(run_id, seq, wave, todo))
            return wave
        wave += 1


def dependents(tasks: Mapping[str, Task], roots: Iterable[str]) -> set[str]:
    """Every task that depends, directly or transitively, on one of `roots`."""
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


def _blocked_rows(task: Task, run_id: str, wave: int, cause: str) -> list[dict[str, Any]]:
    stamp = dt.datetime.now(dt.UTC)
    return [{"processor_name": task.processor, "phase": task.phase, "data_date": d, "season": task.season,
             "run_id": run_id, "task_id": task.id, "status": "blocked", "attempt": 0, "records_processed": 0,
             "duration_seconds": 0.0, "started_at": None, "finished_at": stamp, "error_category": "dependency_gap",
             "error_message": f"upstream {cause} failed", "warnings": [], "backfill_mode": True,
             "bootstrap": task.bootstrap, "wave": wave} for d in task.dates]


def _result_rows(result: Mapping[str, Any], task: Task, run_id: str, wave: int) -> list[dict[str, Any]]:
    if result.get("noop"):
        stamp = dt.datetime.now(dt.UTC)
        return [{"processor_name": task.processor, "phase": task.phase, "data_date": d, "season": task.season,
                 "run_id": run_id, "task_id": task.id, "status": "success", "attempt": result.get("attempt", 1),
                 "records_processed": 0, "duration_seconds": 0.0, "finished_at": stamp, "backfill_mode": True,
                 "bootstrap": task.bootstrap, "wave": wave} for d in task.dates]
    from backfill.executor import TaskResult, history_rows

    return history_rows(TaskResult.from_json(dict(result)), task, run_id, wave)


def checkpoint(store: StateStore, dispatcher: Dispatcher, warehouse: Warehouse | None, run_id: str, seq: int,
               wave: int, triggers: TriggerPauser | None = None, takeover_after: float | None = None) -> str:
    """The chord callback: verify the wave, record it in one bulk write, block dependents, send the next.

    `takeover_after` (the broker's redelivery delay) lets the redelivered callback of a worker
    that died mid-checkpoint finish the job instead of being taken for a duplicate.
    Returns what it did (`waiting`, `duplicate`, `stale`, `cancelled`, `unknown`, `next`), for logs and tests.
    """
    run = store.get_run(run_id)
    if run is None:
        return "unknown"
    if run.status is RunStatus.cancelled:
        return "cancelled"
    if run.seq != seq or not run.status.active:
        return "stale"
    ids = store.get_wave(run_id, seq, wave)
    states = store.states(run_id)
    if any(not states[i].finished for i in ids):
        # A premature callback (a redelivered header task counted twice) or a task still
        # waiting for redelivery after a worker died: look again shortly.
        dispatcher.send_checkpoint(run_id, seq, wave, CHECKPOINT_POLL_SECONDS)
        return "waiting"
    guard, written = f"checkpoint:{seq}:{wave}", f"history:{seq}:{wave}"
    if not store.claim(run_id, guard, takeover_after):
        return "duplicate"
    failed = [i for i in ids if states[i] == TaskStatus.failed]
    newly_blocked: dict[str, str] = {}
    if failed:
        everything = store.tasks(run_id)
        for f in failed:
            for d in sorted(dependents(everything, [f])):
                if states.get(d) == TaskStatus.pending and d not in newly_blocked:
                    newly_blocked[d] = f
        store.set_states(run_id, {d: TaskStatus.blocked for d in newly_blocked})
    tasks = store.tasks_by_id(run_id, list(ids) + list(newly_blocked))
    results = store.results_by_id(run_id, ids)
    rows: list[dict[str, Any]] = []
    for i in ids:
        if i in results and states[i] in (TaskStatus.succeeded, TaskStatus.failed):
            rows.extend(_result_rows(results[i], tasks[i], run_id, wave))
    for d, cause in newly_blocked.items():
        rows.extend(_blocked_rows(tasks[d], run_id, wave, cause))
    if rows and warehouse is not None and not store.is_complete(run_id, written):
        try:
            RunHistory(warehouse, run.history_table).write(rows)
        except Exception:
            store.unclaim(run_id, guard)
            raise
        store.complete(run_id, written)
    if triggers is not None:
        for name in trigger_names(tasks.values()):
            triggers.renew(name, run_id, TRIGGER_TTL_SECONDS)
    dispatch(store, dispatcher, run_id, seq, wave + 1, {**states, **{d: TaskStatus.blocked for d in newly_blocked}})
    store.complete(run_id, guard)
    return "next"


def finish(store: StateStore, run_id: str, seq: int, triggers: TriggerPauser | None = None,
           takeover_after: float | None = None) -> RunStatus | None:
    """Close a run once: its status, then locks and trigger pauses go back."""
    run = store.get_run(run_id)
    if run is None or run.seq != seq or not run.status.active or not store.claim(run_id, f"finish:{seq}",
                                                                                  takeover_after):
        return None
    states = store.states(run_id)
    ok = all(s in (TaskStatus.succeeded, TaskStatus.skipped) for s in states.values())
    status = RunStatus.succeeded if ok else RunStatus.failed
    store.update_run(run_id, status=status, finished_at=now())
    tasks = store.tasks(run_id)
    store.release_locks(run_id, task_keys(tasks.values()))
    _release_triggers(triggers, run_id, tasks.values())
    store.complete(run_id, f"finish:{seq}")
    return status


def cancel(store: StateStore, dispatcher: Dispatcher, run_id: str, triggers: TriggerPauser | None = None) -> RunRecord:
    """Stop new work at once: the flag first (tasks check it atomically before starting), then revoke."""
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
    _release_triggers(triggers, run_id, tasks.values())
    return store.get_run(run_id) or run


def record_finished(store: StateStore, warehouse: Warehouse, run_id: str) -> int:
    """Write the run history of every finished task of the current sequence, in one bulk write.

    A cancelled run never reaches its next checkpoint, so the tasks that finished in its last
    wave would otherwise be known only to Redis. The write is a keyed upsert, so rows a
    checkpoint already wrote are rewritten identically, never duplicated. Returns rows written.
    """
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis", hint="`backfill runs` lists the known runs")
    states = store.states(run_id)
    rows: list[dict[str, Any]] = []
    for wave in range(run.wave + 1):
        ids = [i for i in store.get_wave(run_id, run.seq, wave)
               if states.get(i) in (TaskStatus.succeeded, TaskStatus.failed)]
        if not ids:
            continue
        tasks = store.tasks_by_id(run_id, ids)
        results = store.results_by_id(run_id, ids)
        for i in ids:
            if i in results:
                rows.extend(_result_rows(results[i], tasks[i], run_id, tasks[i].wave))
    return RunHistory(warehouse, run.history_table).write(rows)


def _restart(store: StateStore, dispatcher: Dispatcher, run: RunRecord, chosen: Sequence[Task],
             triggers: TriggerPauser | None) -> int:
    """A new wave sequence over `chosen`, in their original wave order (which respects every dependency)."""
    by_wave: dict[int, list[str]] = {}
    for t in chosen:
        by_wave.setdefault(t.wave, []).append(t.id)
    seq = run.seq + 1
    store.set_states(run.run_id, {t.id: TaskStatus.pending for t in chosen})
    store.set_waves(run.run_id, seq, [by_wave[w] for w in sorted(by_wave)])
    store.update_run(run.run_id, seq=seq, wave=0, status=RunStatus.running, finished_at="", cancelled_at="")
    _pause_triggers(triggers, run.run_id, chosen)
    dispatch(store, dispatcher, run.run_id, seq, 0)
    return len(chosen)


def retry(store: StateStore, dispatcher: Dispatcher, run_id: str, triggers: TriggerPauser | None = None) -> int:
    """Run the failed and blocked tasks again (after a fix); returns how many."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis", hint=f"`backfill resume {run_id}` rebuilds it from run history")
    if run.status.active:
        raise BadInput(f"run {run_id} is still running", hint="retry it once it has finished")
    states = store.states(run_id)
    tasks = store.tasks(run_id)
    chosen = [tasks[i] for i, s in states.items() if s in (TaskStatus.failed, TaskStatus.blocked)]
    if not chosen:
        raise BadInput(f"run {run_id} has no failed or blocked tasks to retry")
    _lock(store, run_id, chosen)
    return _restart(store, dispatcher, run, chosen, triggers)


def resume(store: StateStore, dispatcher: Dispatcher, run_id: str, triggers: TriggerPauser | None = None) -> int:
    """Continue a run Redis still knows but whose queue was lost: every unfinished task, in a new sequence."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis")
    states = store.states(run_id)
    tasks = store.tasks(run_id)
    chosen = [tasks[i] for i, s in states.items() if not s.finished or
              (run.status is RunStatus.cancelled and s == TaskStatus.cancelled)]
    if not chosen:
        return 0
    _lock(store, run_id, chosen)
    return _restart(store, dispatcher, run, chosen, triggers)


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
def progress(store: StateStore, run_id: str) -> dict[str, Any] | None:
    """Counts per status overall and per (phase, season), current wave, rate and ETA."""
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
    done = counts["succeeded"] + counts["skipped"]
    settled = done + counts["failed"] + counts["blocked"] + counts["cancelled"]
    end = run.finished_at or now()
    elapsed = max(end - run.created_at, 1e-6)
    rate = done / elapsed
    remaining = len(states) - settled
    failures = [{"task_id": tid, "category": r.get("error_category"), "message": r.get("error_message")}
                for tid, r in sorted(store.results(run_id).items())
                if states.get(tid) == TaskStatus.failed]
    return {
        "run_id": run_id, "status": run.status.value, "pipeline": run.pipeline, "request": run.request,
        "created_at": run.created_at, "finished_at": run.finished_at, "cancelled_at": run.cancelled_at,
        "seq": run.seq, "wave": run.wave, "waves": run.waves, "total": len(states), "done": done,
        "settled": settled, "counts": counts, "elapsed_seconds": round(elapsed, 1),
        "rate_per_minute": round(rate * 60, 2),
        "eta_seconds": round(remaining / rate, 1) if rate > 0 and run.status.active else None,
        "by_phase_season": [{"phase": p, "season": s, **c} for (p, s), c in sorted(groups.items())],
        "failures": failures,
    }
