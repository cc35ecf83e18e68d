"""The Sentry sink: final task failures become events grouped by (processor, category).

- `init_sentry(settings)` starts the SDK only when `BACKFILL_SENTRY_DSN` is set. No default
  integrations: no logging integration (every log line would become a breadcrumb or event),
  no Celery integration (it would report retries too); only the atexit flush. The events we
  send are exactly the ones `report_task_failure` builds.
- `scrub_event` is the SDK's `before_send`: it walks the whole (already serialised) event and
  replaces URL passwords and every known secret (the Redis password, the DSN, values of env
  vars named like *PASSWORD*, *SECRET*, *TOKEN*, *DSN*, *KEY*) with `***`.
- `report_task_failure(result, run_id)` sends one event per final failure with
  `fingerprint=[processor, category]`, so one processor failing on 200 dates is one issue.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from backfill.errors import MissingExtra
from backfill.outcome import ErrorCategory
from backfill.settings import Settings, secret_environment

REDACTED = "***"
SECRET_ENV_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "DSN", "KEY")
MIN_SECRET_LENGTH = 6  # shorter env values ("1", "true") would shred every event
# scheme://user:PASSWORD@host -> scheme://user:***@host (user may be empty: redis://:pw@host)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s/]+)(?=@)")

_secrets: set[str] = set()
_active = False


def _sdk() -> Any:
    try:
        return importlib.import_module("sentry_sdk")
    except ImportError as exc:
        raise MissingExtra("sentry-sdk is not installed (BACKFILL_SENTRY_DSN is set)",
                           hint="pip install 'backfill[sentry]'") from exc


def known_secrets(settings: Settings, environ: dict[str, str] | None = None) -> set[str]:
    """Every value that must never leave the process in an event."""
    from urllib.parse import unquote, urlsplit

    found: set[str] = set()
    redis_url = settings.redis_url_value
    if redis_url:
        password = urlsplit(redis_url).password
        if password:
            found |= {password, unquote(password)}
    dsn = settings.sentry_dsn.get_secret_value()
    if dsn:
        found.add(dsn)
    env = secret_environment(SECRET_ENV_MARKERS) if environ is None else environ
    for name, value in env.items():
        if any(marker in name.upper() for marker in SECRET_ENV_MARKERS) and value:
            found.add(value)
            password = _url_password(value)
            if password:
                found.add(password)
    return {s for s in found if len(s) >= MIN_SECRET_LENGTH}


def _url_password(value: str) -> str | None:
    match = _URL_PASSWORD.search(value)
    return match.group("pw") if match else None


def scrub_text(text: str, secrets: set[str] | None = None) -> str:
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
    for secret in sorted(_secrets if secrets is None else secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub(value: Any, secrets: set[str] | None) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, dict):
        return {(_scrub(k, secrets) if isinstance(k, str) else k): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secrets) for v in value]
    return value


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """`before_send`: the event with URL passwords and known secrets replaced by `***`, everywhere."""
    scrubbed: dict[str, Any] = _scrub(event, None)
    return scrubbed


def init_sentry(settings: Settings) -> bool:
    """Start the Sentry SDK if a DSN is configured; returns whether it did."""
    global _active
    dsn = settings.sentry_dsn.get_secret_value()
    if not dsn:
        return False
    sdk = _sdk()
    from sentry_sdk.integrations.atexit import AtexitIntegration

    _secrets.clear()
    _secrets.update(known_secrets(settings))
    # send_default_pii stays at its default (False); passing it is deprecated in recent SDKs.
    sdk.init(dsn=dsn, before_send=scrub_event, default_integrations=False,
             integrations=[AtexitIntegration(callback=lambda pending, timeout: None)],
             environment=settings.environment or None, max_breadcrumbs=0)
    _active = True
    return True


def is_active() -> bool:
    if not _active:
        return False
    try:
        return bool(_sdk().get_client().is_active())
    except MissingExtra:
        return False


def report_task_failure(result: dict[str, Any], run_id: str) -> None:
    """One error event for a task's final failure, grouped by (processor, category). No-op without Sentry."""
    if not is_active():
        return
    sdk = _sdk()
    processor = str(result.get("processor") or "unknown")
    category = str(result.get("error_category") or ErrorCategory.processor_error)
    first_line = (str(result.get("error_message") or "").strip().splitlines() or [""])[0]
    task_id = str(result.get("task_id") or "")
    sdk.capture_event({
        "level": "error",
        "message": f"{processor}: {category}: {first_line}",
        "fingerprint": [processor, category],
        "tags": {"run_id": run_id, "processor": processor, "category": category, "task_id": task_id},
        "extra": {"attempt": result.get("attempt"), "season": result.get("season"),
                  "dates": [str(d) for d in result.get("dates") or []],
                  "error_message": str(result.get("error_message") or "")[:2000]},
        "logger": "backfill.alerts",
    })


def flush(timeout: float = 2.0) -> None:
    if is_active():
        _sdk().flush(timeout=timeout)


class SentrySink:
    """Alerts as Sentry events, still grouped by (processor, category), and only as the run's mode allows.

    A failure or critical alert is one event; a digest is one event per (category, processor)
    group with its counts, so a season of one failing processor stays one Sentry issue.
    """

    name = "sentry"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def send(self, alert: Any) -> None:
        if not is_active() and self.settings is not None:
            init_sentry(self.settings)
        if not is_active():
            raise RuntimeError("Sentry is not initialised in this process (no DSN?)")
        sdk = _sdk()
        if alert.digest is None:
            f = alert.failure
            processor = str(f.get("processor") or "unknown")
            category = str(f.get("category") or ErrorCategory.processor_error)
            sdk.capture_event({
                "level": "fatal" if alert.kind == ErrorCategory.critical else "error",
                "message": f"{processor}: {category}: {f.get('message') or ''}",
                "fingerprint": [processor, category],
                "tags": {"run_id": alert.run_id, "processor": processor, "category": category,
                         "task_id": str(f.get("task_id") or ""), "alert": alert.kind},
                "extra": {"dates": f.get("dates"), "attempt": f.get("attempt")}, "logger": "backfill.alerts"})
        else:
            for g in alert.digest.groups:
                sdk.capture_event({
                    "level": "error" if g.failed or g.blocked else "warning",
                    "message": f"{g.processor}: {g.category}: {g.count} date(s) in {alert.digest.title}",
                    "fingerprint": [g.processor, g.category],
                    "tags": {"run_id": alert.run_id, "processor": g.processor, "category": g.category,
                             "alert": alert.kind, "season": alert.digest.season or "run"},
                    "extra": {"dates": g.runs_text(20), "failed": g.failed, "blocked": g.blocked,
                              "partial": g.partial, "examples": g.examples},
                    "logger": "backfill.alerts"})
        flush(5.0)
