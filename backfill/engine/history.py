"""The run history of settled tasks: rows per date, written in bulk, never one write per task."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from backfill.engine.events import EngineObserver, TaskSettled
from backfill.errors import BadInput
from backfill.planner import Task
from backfill.runhistory import RunHistory
from backfill.settings import Settings
from backfill.spec import DEFAULT_RUN_HISTORY_TABLE
from backfill.state import StateStore, TaskStatus
from backfill.state.base import now
from backfill.warehouse import Warehouse

log = logging.getLogger(__name__)
FLUSH_LOCK_SECONDS = 120.0
SETTLED_KINDS = (TaskStatus.succeeded, TaskStatus.failed, TaskStatus.revoked, TaskStatus.blocked)


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


class HistoryFlusher(EngineObserver):
    """Writes the run history while a run goes on, in bulk: once `history_flush_tasks` settled
    tasks wait, or the oldest waited `history_flush_seconds`. Not on the run's last settle: the
    finish step writes the rest itself, before the run's status (it must not depend on a listener)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_task_settled(self, event: TaskSettled) -> None:
        done = event.settled
        if done.open <= 0:
            return
        if done.unflushed >= self.settings.history_flush_tasks or (
                done.oldest_unflushed is not None
                and now() - done.oldest_unflushed >= self.settings.history_flush_seconds):
            try:
                flush_history(event.store, event.warehouse(), event.run.run_id)
            except Exception:  # the next settle or the finish writes them; a task must not fail for it
                log.warning("run %s: run-history flush failed; will retry", event.run.run_id, exc_info=True)
