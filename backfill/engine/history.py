"""The run history of settled tasks: rows per date, written in bulk, never one write per task.

Rows are made by `backfill.runhistory.build_rows` (the one builder, for every outcome); this
module only gathers what each settled task left in run state and writes it in one go.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from backfill.engine.events import EngineObserver, TaskSettled
from backfill.errors import BackfillError, BadInput
from backfill.outcome import ErrorCategory, TaskOutcome
from backfill.runhistory import RowContext, RunHistory, build_rows
from backfill.settings import Settings
from backfill.spec import DEFAULT_RUN_HISTORY_TABLE, load_spec
from backfill.state import RunRecord, StateStore, TaskStatus
from backfill.state.base import now
from backfill.warehouse import Warehouse

log = logging.getLogger(__name__)
FLUSH_LOCK_SECONDS = 120.0
SETTLED_KINDS = (TaskStatus.success, TaskStatus.partial, TaskStatus.failed, TaskStatus.revoked, TaskStatus.blocked)
# A cancelled task never ran, yet their table gets its row too (with a `started_at`), so
# `gaps` and `resume` see why the date is not done.
RECORDED_KINDS = (*SETTLED_KINDS, TaskStatus.cancelled)
REVOKED_MESSAGE = "revoked through Celery (control revoke, Flower or the API)"


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
            rows += build_rows(task, run_id, context, outcome=TaskOutcome.blocked,
                               category=ErrorCategory.dependency_gap,
                               message=f"upstream {cause} failed", at=now, parent=cause.split("@")[0])
        elif state is TaskStatus.revoked:
            rows += build_rows(task, run_id, context, outcome=TaskOutcome.revoked, attempt=attempts.get(i, 0),
                               category=ErrorCategory.revoked, message=REVOKED_MESSAGE, at=now)
        elif state is TaskStatus.cancelled:
            rows += build_rows(task, run_id, context, outcome=TaskOutcome.cancelled, attempt=attempts.get(i, 0),
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


def record_finished(store: StateStore, warehouse: Warehouse, run_id: str) -> int:
    """Write the run history of every settled and cancelled task of the run, in one bulk write.

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
