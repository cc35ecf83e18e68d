"""What a worker process runs besides tasks: Sentry, the watchdog timer, and the revoke hook.

Installed only by the worker entry module (`create_app(..., worker=True)`), through Celery's
worker signals, so the CLI and Flower, which build or import an app, start none of it.

- The watchdog: every `Settings.watchdog_interval` seconds the worker's main process sweeps
  every active run (`engine.sweep`): re-sends tasks whose lease expired, heals a run stalled
  for `Settings.stall_after` seconds (purged queue, lost or revoked messages), and finishes a
  run whose last task settled while its finish step failed. Every worker runs one; Redis
  locks make a second one a no-op. `Settings.watchdog = False` turns it off.
- Revoked means settled: when a worker discards a revoked `backfill.run_task` message (or
  terminates a running one), `task_revoked` fires there and the task is settled as `revoked`,
  its dependents blocked, and the run goes on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, signals  # type: ignore[import-untyped]

from backfill import engine
from backfill.settings import Settings
from backfill.state import RunStatus, TaskStatus

log = logging.getLogger(__name__)


def _context(app: Celery) -> Any:
    return app.backfill_context()  # type: ignore[attr-defined]


def parse_task_message_id(celery_id: str) -> tuple[str, str] | None:
    """`RUN|processor@date|nonce` -> (run id, task id); None for messages that are not ours."""
    parts = celery_id.split("|")
    if len(parts) != 3 or not parts[0] or "@" not in parts[1]:
        return None
    return parts[0], parts[1]


def settle_revoked(app: Celery, celery_id: str) -> str:
    """Record a revoked task as `revoked` (unless its run was cancelled or it already settled)."""
    from backfill.state.redis import through_redis_outage
    from workers.tasks import CeleryDispatcher

    ids = parse_task_message_id(celery_id)
    if ids is None:
        return "not ours"
    run_id, task_id = ids
    ctx = _context(app)
    run = ctx.store.get_run(run_id)
    if run is None or run.status is not RunStatus.running:
        return "inactive"
    budget = 30.0  # run from the worker's main thread, which takes no message meanwhile: shorter than a task's
    done = through_redis_outage(lambda: engine.settle(
        ctx.store, CeleryDispatcher(app, budget), run_id, task_id, None, TaskStatus.revoked, None,
        settings=ctx.settings, warehouse=ctx.warehouse, triggers=ctx.triggers, observers=ctx.observers),
        budget, f"revoked task {task_id}")
    log.warning("task %s of run %s revoked: %s", task_id, run_id, done.outcome)
    return done.outcome


class Watchdog:
    """A daemon thread that sweeps active runs every `interval` seconds until stopped."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backfill-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from backfill.state.redis import OUTAGE_BUDGET_SECONDS, OUTAGE_ERRORS
        from workers.tasks import CeleryDispatcher

        while not self._stop.wait(self.settings.watchdog_interval):
            try:
                ctx = _context(self.app)
                engine.sweep(ctx.store, CeleryDispatcher(self.app, OUTAGE_BUDGET_SECONDS), self.settings,
                             ctx.warehouse, ctx.triggers, observers=ctx.observers)
            except OUTAGE_ERRORS as exc:  # down, or read-only during a failover: the next pass tries again
                log.warning("watchdog sweep skipped: Redis unavailable (%s)", type(exc).__name__)
            except Exception:  # the broker down, or a bug: the next pass tries again
                log.warning("watchdog sweep failed", exc_info=True)


def install_worker_hooks(app: Celery, settings: Settings) -> None:
    """Connect the worker-only behaviour to this app's worker signals."""
    started: dict[str, Watchdog] = {}

    def on_init(sender: Any = None, **_: Any) -> None:
        if settings.sentry_dsn.get_secret_value():
            from backfill.alerts.sentry import init_sentry

            init_sentry(settings)

    def on_ready(sender: Any = None, **_: Any) -> None:
        if settings.watchdog and "dog" not in started:
            started["dog"] = Watchdog(app, settings)
            started["dog"].start()

    def on_shutdown(sender: Any = None, **_: Any) -> None:
        if "dog" in started:
            started["dog"].stop()

    def on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
        celery_id = getattr(request, "id", None) or getattr(request, "task_id", None)
        if not celery_id:
            return
        try:
            settle_revoked(app, str(celery_id))
        except Exception:  # the watchdog heals the run if this is missed
            log.warning("could not record revoked task %s", celery_id, exc_info=True)

    signals.worker_init.connect(on_init, weak=False)
    signals.worker_ready.connect(on_ready, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
    signals.task_revoked.connect(on_revoked, weak=False)
