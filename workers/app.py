"""The Celery app factory. `app` at the bottom exists only for `celery -A workers.app ...`.

Configuration, chosen on purpose:
- task_acks_late + task_reject_on_worker_lost: a message is acknowledged only after its task
  finished, so a SIGKILLed worker's tasks are delivered again. Safe because every task is
  idempotent (partition replace; state transitions guarded in Redis).
- worker_prefetch_multiplier = 1: a worker reserves one task per slot, so a long task never
  sits behind another on a busy worker while idle workers wait.
- broker_transport_options.visibility_timeout (BACKFILL_VISIBILITY_TIMEOUT, default 2 h):
  Redis redelivers an unacknowledged message after this long, so it must exceed the longest
  task (retry countdowns included); tests lower it to see redelivery within seconds, and the
  sweep that finds expired messages is kept well inside it.
- result_expires = 3 days: chord bookkeeping and task results clean themselves up; the
  durable record is the warehouse's run history, not the result backend.
- worker_send_task_events + task_send_sent_event: Flower sees tasks with no extra flags.
- Task names `backfill.run_task`, `backfill.checkpoint_wave`, `backfill.finish_run`; task ids
  are `RUN|processor@date|nonce`, so Flower's search finds a run, a processor or a date.
- Broker, result backend and run state all use BACKFILL_REDIS_URL as given (passwords and
  `rediss://` pass straight through); it is only ever shown redacted.
- BACKFILL_SENTRY_DSN set: Sentry is started here (backfill.alerts.sentry), and run_task
  reports each final failure, scrubbed of secrets, grouped by (processor, category).
"""

from __future__ import annotations

import os
import ssl

from celery import Celery

from backfill.settings import Settings

DEFAULT_VISIBILITY_TIMEOUT = 7200.0


def create_app(settings: Settings) -> Celery:
    if settings.sentry_dsn.get_secret_value():
        from backfill.alerts.sentry import init_sentry

        init_sentry(settings)
    url = settings.redis_url_value or "redis://127.0.0.1:6379/0"
    app = Celery("backfill", broker=url, backend=url, set_as_current=False)
    visibility = float(os.environ.get("BACKFILL_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={
            "visibility_timeout": visibility,
            # kombu sweeps for expired unacked messages every interval * throttle seconds
            # (100 s by default); keep the sweep well inside a short visibility timeout.
            "unacked_restore_interval": max(1.0, min(10.0, visibility / 3)),
            "unacked_restore_throttle": 1 if visibility < 600 else 10,
        },
        result_backend_transport_options={"visibility_timeout": visibility},
        result_expires=3 * 24 * 3600,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
    )
    if url.startswith("rediss://") and "ssl_cert_reqs" not in url:
        app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        app.conf.redis_backend_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    from workers.tasks import register

    register(app, settings)
    return app


app = create_app(Settings())
