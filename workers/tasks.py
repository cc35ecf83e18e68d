"""The Celery task of a run (`backfill.run_task`) and the dispatcher the engine sends through.

Arguments are only ids (run id, task id): Flower shows arguments, so no URL, password or
token ever travels in a message. Everything else is read from run state. A task costs two
Redis round trips of bookkeeping: one Lua call to begin (which takes its lease) and one to
record the outcome, release its children and pump the next ready tasks.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery, Task  # type: ignore[import-untyped]
from celery.exceptions import Retry  # type: ignore[import-untyped]
from kombu.exceptions import OperationalError

from backfill import engine
from backfill.calendar import Calendar
from backfill.checks import UpstreamCheck
from backfill.errors import QuotaExceeded, TransientWarehouseError
from backfill.observers import standard_observers
from backfill.planner import Task as PlanTask
from backfill.settings import DEFAULT_REDIS_URL, Settings
from backfill.spec import PipelineSpec, load_spec
from backfill.state import BeginDecision, RedisStateStore, TaskStatus
from backfill.state.base import now
from backfill.state.redis import OUTAGE_BUDGET_SECONDS, OUTAGE_ERRORS, through_redis_outage
from backfill.warehouse import Warehouse, open_warehouse

log = logging.getLogger(__name__)
BACKOFF_CAP_SECONDS = 300.0
CALENDARS_KEPT = 8  # runs whose calendar a worker process keeps (the oldest is dropped)
# A quota error says "slow down", not "this task is broken": the throttle halves the
# concurrency and the task waits its turn. Its retries are bounded by time
# (Settings.quota_retry_seconds since the first one), not by attempts, and wait at most this
# many times the base backoff: the throttle paces the warehouse, so a long countdown only left
# the run idle (retries 90-130 s apart at attempt 7 of a 30% storm, the run all but stalled).
QUOTA_BACKOFF_FACTOR = 4
# What a publish raises once kombu's own quick retries gave up on such a broker.
BROKER_ERRORS = (*OUTAGE_ERRORS, OperationalError)


def _best_effort(step: Callable[[], object]) -> None:
    """The throttle's bookkeeping after a write: losing one count to a Redis outage is harmless,
    failing a task whose partitions are already written for it is not."""
    try:
        step()
    except OUTAGE_ERRORS as exc:
        log.warning("throttle bookkeeping skipped: Redis unavailable (%s)", type(exc).__name__)


class LeaseKeeper:
    """Renews the leases of the tasks this process runs, every ttl/3, from one daemon thread.

    A lease that stops being renewed (the process died or hung for a whole TTL) expires and
    the task is re-sent by whoever notices first; a lease that is no longer ours (it expired
    and another attempt took over) is left alone.
    """

    def __init__(self, store: RedisStateStore, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, key: str, value: str) -> None:
        with self._lock:
            self._held[key] = value
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="backfill-leases", daemon=True)
                self._thread.start()

    def drop(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.ttl / 3)
            with self._lock:
                held = dict(self._held)
            if not held:
                continue
            try:
                self.store.renew_leases(held, self.ttl)
            except OUTAGE_ERRORS as exc:  # the next tick tries again; the TTL (3 ticks) covers a short outage
                log.warning("could not renew %d lease(s): Redis unavailable (%s)", len(held), type(exc).__name__)
            except Exception:
                log.warning("could not renew %d lease(s)", len(held), exc_info=True)


class WorkerContext:
    """What a worker process shares between its threads: one Redis client, one warehouse, parsed specs."""

    def __init__(self, settings: Settings, warehouse_factory: Callable[[Warehouse], Warehouse] | None = None) -> None:
        from backfill.throttle import Throttle
        from backfill.triggers import Triggers

        self.settings = settings
        self.store = RedisStateStore.from_url(settings.redis_url_value or DEFAULT_REDIS_URL)
        self.throttle = Throttle(self.store.client, "warehouse", initial_limit=settings.max_warehouse_jobs,
                                 recover_after=settings.throttle_recover_after,
                                 probe_seconds=settings.throttle_probe_seconds)
        self.triggers = Triggers(self.store.client)
        self.leases = LeaseKeeper(self.store, settings.lease_ttl)
        self.observers = standard_observers(self.store, settings)
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._warehouse_factory = warehouse_factory
        self._warehouse: Warehouse | None = None
        self._specs: dict[str, PipelineSpec] = {}
        self._calendars: OrderedDict[tuple[str, str], Calendar] = OrderedDict()
        self._renewed: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def renew_triggers(self, run_id: str, phase: int) -> None:
        """Keep the run's trigger pause alive while its tasks run (at most once a minute per phase)."""
        from backfill.triggers import triggers_for_phases

        key = (run_id, phase)
        moment = time.monotonic()
        with self._lock:
            if moment - self._renewed.get(key, -1e9) < 60:
                return
            self._renewed[key] = moment
        for name in triggers_for_phases([phase]):
            self.triggers.renew(name, run_id, engine.TRIGGER_TTL_SECONDS)

    def upstream_check(self, run_id: str, pipeline: str) -> UpstreamCheck:
        """The defensive check for a task of `run_id`: the run's own partition states, then run history.

        The calendar is read at the run's first task in this process and kept for the run's
        other tasks: a new run (after a schedule import, e.g. more seasons loaded while the
        worker kept running) always sees the schedule as it is, never a copy cached earlier.
        """
        spec = self.spec(pipeline)
        key = (pipeline, run_id)
        with self._lock:
            calendar = self._calendars.get(key)
        if calendar is None:
            calendar = Calendar.from_warehouse(self.warehouse(), spec.schedule_table)
            with self._lock:
                self._calendars[key] = calendar
                while len(self._calendars) > CALENDARS_KEPT:
                    self._calendars.popitem(last=False)
        store = self.store
        # Through a Redis outage: the executor turns any exception into a final failure of the task.
        return UpstreamCheck(spec, calendar, self.warehouse(),
                             lambda keys: through_redis_outage(lambda: store.partition_states(run_id, keys),
                                                               what=f"run {run_id}: upstream states"),
                             stale_running_seconds=self.settings.stale_running_seconds)

    def warehouse(self) -> Warehouse:
        """Opened lazily; an embedded DuckDB file is not held between operations, so the CLI can read it."""
        with self._lock:
            if self._warehouse is None:
                url = self.settings.warehouse_url
                wh = open_warehouse(url, hold=False) if url.startswith("duckdb:") else open_warehouse(url)
                if self._warehouse_factory is not None:
                    wh = self._warehouse_factory(wh)
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
    """The engine's Dispatcher: one `backfill.run_task` message per task, ids `RUN|task|nonce`.

    `outage_budget`: how long one message's send rides out a broker that does not answer or
    refuses writes (a read-only replica after a failover). Workers give it: the tasks they send
    are already in flight in run state, so a send given up would leave them to the watchdog's
    stall healing. The CLI does not: it reports the error at once.
    """

    def __init__(self, app: Celery, outage_budget: float = 0.0) -> None:
        self.app = app
        self.outage_budget = outage_budget

    def send(self, run_id: str, task_ids: Sequence[str], priorities: Sequence[int] | None = None) -> list[str]:
        ids = [f"{run_id}|{tid}|{uuid.uuid4().hex[:8]}" for tid in task_ids]
        if not ids:
            return ids
        levels = list(priorities) if priorities is not None else [0] * len(ids)
        # ignore_result as the task declares it: no subscription to a result that is never stored.
        with self.app.producer_or_acquire() as producer:  # one connection for the whole batch
            for tid, cid, level in zip(task_ids, ids, levels, strict=True):
                publish = functools.partial(self.app.send_task, "backfill.run_task", args=(run_id, tid), task_id=cid,
                                            producer=producer, priority=level, ignore_result=True)
                if self.outage_budget:
                    through_redis_outage(publish, self.outage_budget, f"task {tid}: send", BROKER_ERRORS)
                else:
                    publish()
        return ids

    def revoke(self, queued_ids: Sequence[str]) -> None:
        ids = list(queued_ids)
        for i in range(0, len(ids), 500):
            self.app.control.revoke(ids[i:i + 500])

    def workers_answering(self, timeout: float = 1.0) -> bool:
        """Whether any worker answers a ping within `timeout` seconds (the CLI's "no worker yet" hint)."""
        return bool(self.app.control.ping(timeout=timeout))


def _failure(task: PlanTask, attempt: int, category: str, message: str, started: float) -> dict[str, Any]:
    from backfill.executor import TaskResult

    return TaskResult(task_id=task.id, processor=task.processor, phase=task.phase, season=task.season,
                      dates=task.dates, status="failed", duration_seconds=time.monotonic() - started,
                      finished_at=dt.datetime.now(dt.UTC), error_category=category, error_message=message[:2000],
                      attempt=attempt).to_json()


def run_task(ctx: WorkerContext, app: Celery, celery_task: Task, run_id: str, task_id: str,
             pressure_since: float | None = None) -> dict[str, Any]:
    """Run one task of a run. Never raises for a final failure: it records the failure and returns it.

    `pressure_since`: when this task first met a quota error or throttle wait (carried by its
    retries), for the time budget of quota retries.
    """
    store, settings = ctx.store, ctx.settings
    redelivered = bool((celery_task.request.delivery_info or {}).get("redelivered"))
    begin = through_redis_outage(lambda: store.begin_task(run_id, task_id, ctx.holder, settings.lease_ttl,
                                                          takeover=redelivered), what=f"task {task_id}: begin")
    decision, attempt, task = begin.decision, begin.attempt, begin.task
    if decision is not BeginDecision.run or task is None:
        if decision is BeginDecision.cancelled:
            if store.states(run_id).get(task_id) == TaskStatus.pending:
                store.set_states(run_id, {task_id: TaskStatus.cancelled})
        return {"task_id": task_id, "status": decision.value}
    ctx.leases.hold(begin.lease, f"{ctx.holder}:{attempt}")
    try:
        result = _execute(ctx, celery_task, run_id, task_id, task, attempt, begin.noop, begin.pipeline,
                          pressure_since)
    finally:
        ctx.leases.drop(begin.lease)
    status = TaskStatus.succeeded if result.get("status") in ("success", "partial") else TaskStatus.failed
    # Alerts (Sentry too) go out from settle's observers.
    through_redis_outage(lambda: engine.settle(
        store, CeleryDispatcher(app, OUTAGE_BUDGET_SECONDS), run_id, task_id, attempt, status, result,
        settings=settings, warehouse=ctx.warehouse, triggers=ctx.triggers, task=task, observers=ctx.observers),
        what=f"task {task_id}: recording its outcome")
    return result


def _execute(ctx: WorkerContext, celery_task: Task, run_id: str, task_id: str, task: PlanTask, attempt: int,
             noop: bool, pipeline: str, pressure_since: float | None = None) -> dict[str, Any]:
    """The warehouse work of one attempt; a transient error is retried through Celery (raises Retry)."""
    if noop:  # benchmark runs measure orchestration only
        return {"task_id": task_id, "processor": task.processor, "status": "success", "rows": 0, "noop": True,
                "attempt": attempt}
    from backfill.executor import execute_task

    started = time.monotonic()
    try:
        ctx.renew_triggers(run_id, task.phase)
        spec = ctx.spec(pipeline)
        run = ctx.store.get_run(run_id)
        check = ctx.upstream_check(run_id, pipeline)
        with ctx.throttle.slot(f"{run_id}|{task_id}", timeout=120):
            outcome = execute_task(task, ctx.warehouse(), spec, run_id=run_id, attempt=attempt, check=check,
                                   strict=run.strict if run is not None else True, calendar=check.calendar,
                                   options=(run.request.get("options") if run is not None else None) or {},
                                   settings=ctx.settings)
        if outcome.status in ("success", "partial"):
            _best_effort(ctx.throttle.record_success)
        return outcome.to_json()
    except (TransientWarehouseError, TimeoutError) as exc:
        if isinstance(exc, QuotaExceeded):
            _best_effort(ctx.throttle.record_quota_error)
        # Waiting for a throttle slot is quota pressure too, not a fault of the task.
        pressure = isinstance(exc, (QuotaExceeded, TimeoutError))
        base = ctx.settings.retry_backoff_seconds
        if pressure:
            since = pressure_since if pressure_since is not None else now()
            if now() - since < ctx.settings.quota_retry_seconds:
                countdown = min(backoff_seconds(attempt, base), base * QUOTA_BACKOFF_FACTOR * random.uniform(0.5, 1.5))
                ctx.store.release_for_retry(run_id, task_id, attempt, now() + countdown)
                log.info("task %s attempt %d: %s; retrying in %.1fs", task_id, attempt, type(exc).__name__, countdown)
                raise celery_task.retry(countdown=countdown, max_retries=None,
                                        kwargs={"pressure_since": since}) from exc
        elif attempt <= ctx.settings.max_retries:
            countdown = backoff_seconds(attempt, base)
            ctx.store.release_for_retry(run_id, task_id, attempt, now() + countdown)
            log.info("task %s attempt %d: %s; retrying in %.1fs", task_id, attempt, type(exc).__name__, countdown)
            raise celery_task.retry(countdown=countdown, max_retries=None) from exc
        return _failure(task, attempt, getattr(exc, "category", "transient"), str(exc), started)
    except Retry:
        raise
    except OUTAGE_ERRORS as exc:
        # Run state went away before the write (a Redis restart, a failover): not the task's
        # fault. Wait for Redis (the broker too, when it is the same server), then go again.
        log.warning("task %s attempt %d: Redis unavailable (%s); retrying once it answers", task_id, attempt,
                    type(exc).__name__)
        through_redis_outage(lambda: ctx.store.release_for_retry(run_id, task_id, attempt, now() + 1),
                             what=f"task {task_id}: release for retry")
        raise celery_task.retry(countdown=1, max_retries=None) from exc
    except Exception as exc:  # a bug or an unexpected error fails this task only
        log.exception("task %s failed", task_id)
        return _failure(task, attempt, getattr(exc, "category", "processor_error"), f"{type(exc).__name__}: {exc}",
                        started)


def register(app: Celery, settings: Settings, warehouse_factory: Callable[[Warehouse], Warehouse] | None = None
             ) -> None:
    """Bind the tasks to `app`; the per-process context is built on first use, not at import."""
    by_pid: dict[int, WorkerContext] = {}  # a prefork child builds its own (no client shared across fork)
    lock = threading.Lock()

    def context() -> WorkerContext:
        with lock:
            pid = os.getpid()
            if pid not in by_pid:
                by_pid.clear()
                by_pid[pid] = WorkerContext(settings, warehouse_factory)
            return by_pid[pid]

    app.backfill_context = context  # type: ignore[attr-defined]

    @app.task(name="backfill.run_task", bind=True, max_retries=None, shared=False, ignore_result=True)
    def run_task_(self: Task, run_id: str, task_id: str, pressure_since: float | None = None) -> dict[str, Any]:
        return run_task(context(), app, self, run_id, task_id, pressure_since)

    @app.task(name="backfill.noop", shared=False)
    def noop(i: int) -> int:
        """The plain-Celery baseline of the orchestration benchmark."""
        return i

    @app.task(name="backfill.noop_done", shared=False)
    def noop_done(results: list[int]) -> int:
        return len(results)
