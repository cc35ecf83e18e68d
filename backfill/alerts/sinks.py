"""Sinks: where alerts go. Each is a small class with `name` and `send(alert)`; any number at once.

`configured_sinks(settings)` builds the ones the settings name (mail when an SMTP host and
recipients are set, a webhook when its URL is, Sentry when a DSN is, Markdown files unless
turned off). `deliver` sends one alert to each sink, retrying a few times with a short
backoff; a sink that still fails is logged and recorded (`status` shows it) and never raises:
an alert problem must not fail or stall a run. Error texts are scrubbed of the sinks' secrets
(SMTP password, webhook URL, DSN) before they are logged or stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from backfill.alerts.message import Alert
from backfill.settings import Settings

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver or raise; `deliver` handles retries and logging."""


def secrets_of(settings: Settings) -> set[str]:
    """Values no log line, status or stored failure may contain."""
    from urllib.parse import urlsplit

    found = {settings.smtp_password.get_secret_value(), settings.sentry_dsn.get_secret_value()}
    url = settings.webhook_url.get_secret_value()
    if url:
        found.add(url)
        parts = urlsplit(url)
        found |= {p for p in (parts.path, parts.query, parts.password or "") if len(p) > 1}
    return {s for s in found if s and len(s) >= 4}


def scrub(text: str, secrets: set[str]) -> str:
    from backfill.alerts.sentry import scrub_text

    return scrub_text(text, secrets)


def configured_sinks(settings: Settings) -> list[Sink]:
    from backfill.alerts.files import FileSink
    from backfill.alerts.mail import MailSink
    from backfill.alerts.sentry import SentrySink
    from backfill.alerts.webhook import WebhookSink

    sinks: list[Sink] = []
    if settings.smtp_host and settings.smtp_to:
        sinks.append(MailSink(settings))
    if settings.webhook_url.get_secret_value():
        sinks.append(WebhookSink(settings.webhook_url.get_secret_value(), timeout=settings.smtp_timeout))
    if settings.sentry_dsn.get_secret_value():
        sinks.append(SentrySink(settings))
    if settings.alert_files:
        sinks.append(FileSink(settings.home))
    return sinks


def deliver(alert: Alert, sinks: Sequence[Sink], *, attempts: int = 3, backoff: float = 0.5,
            secrets: set[str] | None = None, on_failure: Callable[[str, str], None] | None = None) -> list[str]:
    """Send `alert` to every sink; returns the names of the sinks that took it."""
    ok: list[str] = []
    for sink in sinks:
        for attempt in range(1, attempts + 1):
            try:
                sink.send(alert)
                ok.append(sink.name)
                break
            except Exception as exc:  # noqa: BLE001 - any sink error is retried, then recorded
                error = scrub(f"{type(exc).__name__}: {exc}", secrets or set())
                if attempt < attempts:
                    time.sleep(backoff * 2 ** (attempt - 1))
                    continue
                log.warning("alert %s of run %s: sink %s failed after %d attempt(s): %s", alert.scope, alert.run_id,
                            sink.name, attempts, error)
                if on_failure is not None:
                    on_failure(sink.name, error)
    return ok
