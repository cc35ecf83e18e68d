"""The Celery app factory: `create_app(settings)` and nothing at import time.

The CLI builds an app only when it sends or revokes messages, from its own Settings (so
`--redis-url` wins), and only through `open_dispatcher`, which `Settings.dispatcher` names: the
library never imports this package. `workers/app.py` is the entry module for `celery -A workers.app`.

Configuration, chosen on purpose:
- task_acks_late + task_reject_on_worker_lost: a message is acknowledged only after its task
  finished, so a SIGKILLed worker's tasks are delivered again. Safe because every task is
  idempotent (partition replace; state transitions guarded in Redis). Recovery does not wait
  for that redelivery: a running task holds a lease in Redis, and an expired lease gets the
  task re-sent within seconds (`backfill.dispatch`).
- worker_prefetch_multiplier = 1: a worker reserves one task per slot, so a long task never
  sits behind another on a busy worker while idle workers wait.
- visibility_timeout (Redis broker, Settings.visibility_timeout, default 2 h): Redis
  redelivers an unacknowledged message after this long. Leases make a short one unnecessary,
  and a short one would deliver long BigQuery tasks twice while they run.
- Broker connection loss: the consumer reconnects forever (broker_connection_max_retries
  None) and running tasks are NOT cancelled (worker_cancel_long_running_tasks_on_connection_loss
  False): a task's result goes to run state, not to the broker, and its late ack only decides
  whether a redelivery happens, which begin_task turns into a no-op for a settled task. The
  result backend retries a lost connection instead of raising into the task
  (result_backend_always_retry). See docs/configuration.md for the failure this avoids.
- A failover that demotes the Redis primary to a read-only replica: kombu counts its replies
  (`UNBLOCKED` to the blocked BRPOP, then READONLY) among channel errors, which end the consumer
  unless broker_channel_error_retry is on (celery/celery#7946); with it, the consumer reconnects
  until a writable primary answers (the control worker of tests/integration/test_redis_readonly.py).
- result_expires = 3 days: the durable record is the warehouse's run history.
- worker_send_task_events + task_send_sent_event: Flower sees tasks with no extra flags.
- backfill.run_task ignores its result and task_track_started is off: the engine reads run
  state, never Celery's result backend, so storing results cost two round trips per task
  for nothing (benchmarks/bench_orchestration.py --commands counts them).
- Task ids are `RUN|processor@date|nonce`, so Flower's search finds a run, a processor or a date.
- Broker = Settings.broker_url (RabbitMQ) when set, else the Redis URL; result backend and
  run state always use the Redis URL (passwords and `rediss://` pass straight through).
- Settings.sentry_dsn set: Sentry is started by the worker process (never by the CLI).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from celery import Celery  # type: ignore[import-untyped]

from backfill.settings import DEFAULT_REDIS_URL, Settings
from backfill.warehouse import Warehouse

if TYPE_CHECKING:
    from workers.tasks import CeleryDispatcher

WarehouseWrapper = Callable[[Warehouse], Warehouse]


def create_app(settings: Settings, warehouse_factory: WarehouseWrapper | None = None, *,
               worker: bool = False) -> Celery:
    """A Celery app for these settings.

    `warehouse_factory` wraps the warehouse a worker opens (tests and benchmarks inject
    faults or delays with it; production passes nothing). `worker=True` is for the entry
    module a worker process loads: it also starts Sentry and the worker's lease renewer and
    watchdog (through Celery's worker signals, so a CLI that builds an app starts neither).
    """
    redis_url = settings.redis_url_value or DEFAULT_REDIS_URL
    broker = settings.broker_url_value
    app = Celery("backfill", broker=broker, backend=redis_url, set_as_current=False)
    visibility = settings.visibility_timeout
    transport: dict[str, object] = {}
    if broker.startswith(("redis://", "rediss://", "unix://")):
        transport = {
            "visibility_timeout": visibility,
            # kombu sweeps for expired unacked messages every interval * throttle seconds.
            "unacked_restore_interval": max(1.0, min(10.0, visibility / 3)),
            "unacked_restore_throttle": 1 if visibility < 600 else 10,
            # Ten priority lists per queue, served 0 first: the engine sends the preferred season's
            # tasks at 0 (see engine.season_priorities). On RabbitMQ priorities need a queue
            # declared with x-max-priority; without it they are ignored, harmlessly.
            "priority_steps": list(range(10)),
        }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": visibility, "retry_on_timeout": True,
                                          "health_check_interval": 10},
        result_expires=3 * 24 * 3600,
        result_backend_always_retry=True,
        result_backend_max_retries=30,
        redis_retry_on_timeout=True,
        redis_socket_keepalive=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        # The engine never reads a run task's Celery result or state (run state in Redis is the
        # truth), so neither is written: two result-backend round trips per task saved.
        # Flower still sees every state through the worker's events.
        task_track_started=False,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_channel_error_retry=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        task_default_queue=settings.task_queue,
    )
    if redis_url.startswith("rediss://") and "ssl_cert_reqs" not in redis_url:
        app.conf.redis_backend_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if broker.startswith("rediss://") and "ssl_cert_reqs" not in broker:
        app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    from workers.tasks import register

    register(app, settings, warehouse_factory)
    if worker:
        from workers.runtime import install_worker_hooks

        install_worker_hooks(app, settings)
    return app


def open_dispatcher(settings: Settings) -> CeleryDispatcher:
    """The engine's Dispatcher over a Celery app for these settings: what the CLI sends, revokes and
    pings workers with. `Settings.dispatcher` names this function, so the CLI never imports Celery."""
    from workers.tasks import CeleryDispatcher

    return CeleryDispatcher(create_app(settings))
