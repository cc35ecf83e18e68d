"""The three Celery tasks of a run, and the dispatcher the engine sends waves through.

Arguments are only ids (run id, task id, wave numbers): Flower shows arguments, so no URL,
password or token ever travels in a message. Everything else is read from run state.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis
from celery import Celery, Task, chord, group
from celery.exceptions import Retry

from backfill import engine
from backfill.errors import QuotaExceeded, TransientWarehouseError
from backfill.planner import Task as PlanTask
from backfill.settings import Settings
from backfill.spec import PipelineSpec, load_spec
from backfill.state import BeginDecision, RedisStateStore, TaskStatus
from backfill.warehouse import Warehouse, open_warehouse

log = logging.getLogger(__name__)
BACKOFF_CAP_SECONDS = 300.0
# A quota error says "slow down", not "this task is broken": the throttle halves the
# concurrency and the task waits its turn, with a budget this many times the normal one.
QUOTA_RETRY_FACTOR = 10


class WorkerContext:
    """What a worker process shares between its threads: one Redis client, one warehouse, parsed specs."""

    def __init__(self, settings: Settings) -> None:
        from backfill.throttle import Throttle
        from backfill.triggers import Triggers

        self.settings = settings
        self.store = RedisStateStore.from_url(settings.redis_url_value or "redis://127.0.0.1:6379/0")
        self.throttle = Throttle(self.store.client, "warehouse", initial_limit=settings.max_warehouse_jobs,
                                 recover_after=settings.throttle_recover_after)
        self.triggers = Triggers(self.store.client)
        self._warehouse: Warehouse | None = None
        self._specs: dict[str, PipelineSpec] = {}
        self._renewed: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def renew_triggers(self, run_id: str, phase: int) -> None:
        """Keep the run's trigger pause alive while its tasks run (at most once a minute per phase).

        Checkpoints renew it too, but one wave of a big backfill can outlast the lease.
        """
        from backfill.triggers import triggers_for_phases

        key = (run_id, phase)
        moment = time.monotonic()
        with self._lock:
            if moment - self._renewed.get(key, -1e9) < 60:
                return
            self._renewed[key] = moment
        for name in triggers_for_phases([phase]):
            self.triggers.renew(name, run_id, engine.TRIGGER_TTL_SECONDS)

    def warehouse(self) -> Warehouse:
        """Opened lazily; an embedded DuckDB file is not held between operations, so the CLI can read it."""
        with self._lock:
            if self._warehouse is None:
                url = self.settings.warehouse_url
                wh = open_warehouse(url, hold=False) if url.startswith("duckdb:") else open_warehouse(url)
                rate = os.environ.get("BACKFILL_FAULT_QUOTA_RATE")
                if rate:
                    from backfill.faults import FaultyWarehouse  # tests and benchmarks only

                    wh = FaultyWarehouse(wh, quota_rate=float(rate))
                self._warehouse = wh
            return self._warehouse

    def spec(self, pipeline: str) -> PipelineSpec:
        with self._lock:
            if pipeline not in self._specs:
                self._specs[pipeline] = load_spec(pipeline)
            return self._specs[pipeline]


def backoff_seconds(attempt: int, base: float) -> float:
    """Exponential backoff with jitter, so retries of many tasks spread out instead of colliding.

    Capped at 60 x the base (2 min by default): quota windows are per minute, so waiting
    longer only idles the run.
    """
    return min(BACKOFF_CAP_SECONDS, base * 60, base * 2 ** max(0, attempt - 1)) * random.uniform(0.5, 1.5)


class CeleryDispatcher:
    """The engine's Dispatcher: a wave is one chord whose callback is the checkpoint."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def send_wave(self, run_id: str, seq: int, wave: int, task_ids: Sequence[str]) -> list[str]:
        ids = [f"{run_id}|{tid}|{uuid.uuid4().hex[:8]}" for tid in task_ids]
        header = group(self.app.signature("backfill.run_task", args=(run_id, tid), immutable=True).set(task_id=cid)
                       for tid, cid in zip(task_ids, ids, strict=True))
        body = self.app.signature("backfill.checkpoint_wave", args=(run_id, seq, wave), immutable=True)
        chord(header, body, app=self.app).apply_async()
        return ids

    def send_checkpoint(self, run_id: str, seq: int, wave: int, countdown: float) -> None:
        self.app.signature("backfill.checkpoint_wave", args=(run_id, seq, wave)).apply_async(countdown=countdown)

    def send_finish(self, run_id: str, seq: int) -> None:
        self.app.signature("backfill.finish_run", args=(run_id, seq)).apply_async()

    def revoke(self, queued_ids: Sequence[str]) -> None:
        ids = list(queued_ids)
        for i in range(0, len(ids), 500):
            self.app.control.revoke(ids[i:i + 500])


def _failure(task: PlanTask, attempt: int, category: str, message: str, started: float) -> dict[str, Any]:
    from backfill.executor import TaskResult

    return TaskResult(task_id=task.id, processor=task.processor, phase=task.phase, season=task.season,
                      dates=task.dates, status="failed", duration_seconds=time.monotonic() - started,
                      finished_at=dt.datetime.now(dt.UTC), error_category=category, error_message=message[:2000],
                      attempt=attempt).to_json()


def run_task(ctx: WorkerContext, celery_task: Task, run_id: str, task_id: str) -> dict[str, Any]:
    """Run one task of a run. Never raises for a final failure: it records the failure and returns it."""
    store = ctx.store
    begin = store.begin_task(run_id, task_id)
    decision, attempt, task = begin.decision, begin.attempt, begin.task
    if decision is not BeginDecision.run or task is None:
        if decision is BeginDecision.cancelled:
            if store.states(run_id).get(task_id) == TaskStatus.pending:
                store.set_states(run_id, {task_id: TaskStatus.cancelled})
        return {"task_id": task_id, "status": decision.value}
    if begin.noop:  # benchmark runs measure orchestration only
        result: dict[str, Any] = {"task_id": task_id, "processor": task.processor, "status": "success",
                                  "rows": 0, "noop": True, "attempt": attempt}
        store.finish_task(run_id, task_id, TaskStatus.succeeded, result)
        return result
    from backfill.executor import execute_task

    started = time.monotonic()
    try:
        ctx.renew_triggers(run_id, task.phase)
        spec = ctx.spec(begin.pipeline)
        with ctx.throttle.slot(f"{run_id}|{task_id}", timeout=120):
            outcome = execute_task(task, ctx.warehouse(), spec, run_id=run_id, attempt=attempt)
        result = outcome.to_json()
        if outcome.status in ("success", "partial"):
            ctx.throttle.record_success()
    except (TransientWarehouseError, TimeoutError) as exc:
        if isinstance(exc, QuotaExceeded):
            ctx.throttle.record_quota_error()
        # Waiting for a throttle slot is quota pressure too, not a fault of the task.
        pressure = isinstance(exc, (QuotaExceeded, TimeoutError))
        if attempt <= ctx.settings.max_retries * (QUOTA_RETRY_FACTOR if pressure else 1):
            store.set_states(run_id, {task_id: TaskStatus.pending})
            countdown = backoff_seconds(attempt, ctx.settings.retry_backoff_seconds)
            log.info("task %s attempt %d: %s; retrying in %.1fs", task_id, attempt, type(exc).__name__, countdown)
            raise celery_task.retry(countdown=countdown, max_retries=None) from exc
        category = getattr(exc, "category", "transient")
        result = _failure(task, attempt, category, str(exc), started)
    except Retry:
        raise
    except Exception as exc:  # a bug or an unexpected error must not fail the chord
        log.exception("task %s failed", task_id)
        result = _failure(task, attempt, getattr(exc, "category", "processor_error"),
                          f"{type(exc).__name__}: {exc}", started)
    status = TaskStatus.succeeded if result.get("status") in ("success", "partial") else TaskStatus.failed
    store.finish_task(run_id, task_id, status, result)
    if status is TaskStatus.failed:
        _report_failure(result, run_id)
    return result


def _report_failure(result: dict[str, Any], run_id: str) -> None:
    """Send a final failure to Sentry (if configured); a Sentry problem never fails the task."""
    try:
        from backfill.alerts.sentry import report_task_failure

        report_task_failure(result, run_id)
    except Exception:  # alerting is best effort
        log.warning("could not report task %s to Sentry", result.get("task_id"), exc_info=True)


def register(app: Celery, settings: Settings) -> None:
    """Bind the tasks to `app`; the per-process context is built on first use, not at import."""
    holder: dict[str, WorkerContext] = {}
    lock = threading.Lock()

    def context() -> WorkerContext:
        with lock:
            if "ctx" not in holder:
                holder["ctx"] = WorkerContext(settings)
            return holder["ctx"]

    app.backfill_context = context  # type: ignore[attr-defined]

    def redelivery_seconds() -> float:
        """A claim older than the broker's visibility timeout belongs to a worker that died."""
        return float((app.conf.broker_transport_options or {}).get("visibility_timeout", 3600))

    # A Redis hiccup before the task could record anything must not fail the chord (its
    # callback would never run): retry it like any transient error.
    redis_errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

    @app.task(name="backfill.run_task", bind=True, max_retries=None, shared=False, autoretry_for=redis_errors,
              retry_backoff=True, retry_backoff_max=60)
    def run_task_(self: Task, run_id: str, task_id: str) -> dict[str, Any]:
        return run_task(context(), self, run_id, task_id)

    @app.task(name="backfill.checkpoint_wave", bind=True, max_retries=None, shared=False, autoretry_for=redis_errors,
              retry_backoff=True, retry_backoff_max=60)
    def checkpoint_wave(self: Task, run_id: str, seq: int, wave: int) -> str:
        ctx = context()
        try:
            return engine.checkpoint(ctx.store, CeleryDispatcher(app), ctx.warehouse(), run_id, seq, wave,
                                     ctx.triggers, takeover_after=redelivery_seconds())
        except TransientWarehouseError as exc:
            raise self.retry(countdown=backoff_seconds(self.request.retries + 1, 1.0)) from exc

    @app.task(name="backfill.finish_run", shared=False, max_retries=None, autoretry_for=redis_errors,
              retry_backoff=True, retry_backoff_max=60)
    def finish_run(run_id: str, seq: int) -> str | None:
        ctx = context()
        status = engine.finish(ctx.store, run_id, seq, ctx.triggers, takeover_after=redelivery_seconds())
        return status.value if status else None

    @app.task(name="backfill.noop", shared=False)
    def noop(i: int) -> int:
        """The plain-Celery baseline of the orchestration benchmark."""
        return i

    @app.task(name="backfill.noop_done", shared=False)
    def noop_done(results: list[int]) -> int:
        return len(results)
