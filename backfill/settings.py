"""One Settings object, read from flags, then BACKFILL_* env vars, then defaults.

It is built once by the CLI (or a worker's app factory) and passed explicitly; nothing in
the library reads the environment on its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BACKFILL_", extra="ignore")

    home: Path = Field(default=Path(".backfill"), description="local state: warehouse file, redis, logs")
    warehouse: str = Field(default="", description="duckdb:///path.duckdb or bigquery://project")
    redis_url: SecretStr = Field(default=SecretStr(""), description="redis://[:password@]host:port/db")
    pipeline: str = Field(default="pipelines/nba", description="default pipeline directory")
    concurrency: int = Field(default=8, ge=1, le=1024)
    max_warehouse_jobs: int = Field(default=20, ge=1, le=1000)
    throttle_recover_after: int = Field(default=20, ge=1, le=10000,
                                        description="consecutive successes before the throttle limit creeps up")
    throttle_probe_seconds: float = Field(default=30.0, gt=0, le=3600,
                                          description="a success after this long without a limit change raises it "
                                                      "by one (the throttle probes back up under steady quota errors)")
    max_retries: int = Field(default=5, ge=0, le=50)
    quota_retry_seconds: float = Field(default=1800.0, gt=0,
                                       description="a task keeps retrying quota errors and throttle waits for this "
                                                   "long after the first one, then fails `quota`")
    retry_backoff_seconds: float = Field(default=2.0, ge=0)
    sentry_dsn: SecretStr = Field(default=SecretStr(""))
    environment: str = Field(default="", description="Sentry's environment tag (production, staging ...)")
    alerts: str = Field(default="digest", pattern="^(digest|immediate|off)$")
    # -- alert sinks (backfill.alerts): any number at once ---------------------------------
    smtp_host: str = Field(default="", description="mail alerts go out through this SMTP server when set")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str = Field(default="", description="SMTP login (none when empty)")
    smtp_password: SecretStr = Field(default=SecretStr(""))
    smtp_starttls: bool = Field(default=True, description="upgrade the SMTP connection with STARTTLS")
    smtp_from: str = Field(default="backfill@localhost")
    smtp_to: str = Field(default="", description="comma-separated recipients of alert mails")
    smtp_timeout: float = Field(default=10.0, gt=0, description="seconds per SMTP or webhook connection")
    webhook_url: SecretStr = Field(default=SecretStr(""), description="JSON POST per alert (Slack-compatible)")
    alert_files: bool = Field(default=True, description="write each alert as Markdown under <home>/runs/<run>/")
    alert_attempts: int = Field(default=3, ge=1, le=10, description="tries per sink before a send is given up")
    alert_backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    http_token: SecretStr = Field(default=SecretStr(""),
                                  description="bearer token sent to `http:` processors (never printed)")
    triggers_token: SecretStr = Field(default=SecretStr(""),
                                      description="bearer token `backfill triggers serve` requires (never printed)")
    http_auth: str = Field(default="", pattern="^(|google)$",
                           description="`google`: a Google ID token for Cloud Run `http:` processors (google-auth)")
    stale_running_seconds: float = Field(
        default=6 * 3600.0, gt=0,
        description="a `running` run-history record older than this is stale: it never blocks and never passes "
                    "a defensive check")
    # -- the engine and its workers --------------------------------------------------------
    broker_url: SecretStr = Field(default=SecretStr(""),
                                  description="Celery broker if not the Redis (amqp://user:pw@host:5672//)")
    visibility_timeout: float = Field(default=7200.0, ge=1,
                                      description="Redis broker: seconds before an unacknowledged message returns")
    lease_ttl: float = Field(default=30.0, ge=3, le=3600,
                             description="a running task's lease; renewed every ttl/3 while its worker lives")
    stall_after: float = Field(default=30.0, ge=1,
                               description="seconds without progress (and nothing running) before a run is stalled")
    watchdog: bool = Field(default=True, description="workers sweep active runs: expired leases, stalled runs")
    watchdog_interval: float = Field(default=5.0, ge=0.5, le=600, description="seconds between a worker's sweeps")
    dispatcher: str = Field(default="workers.factory:open_dispatcher", pattern=r"^[\w.]+:\w+$",
                            description="module:function that builds the engine's Dispatcher from these settings "
                                        "(the CLI reaches Celery only through it)")
    task_queue: str = Field(default="celery", min_length=1, max_length=200,
                            description="the broker queue run tasks go to (one per deployment sharing a broker)")
    dispatch_window: int = Field(default=64, ge=1, le=100000,
                                 description="tasks of a run sent to the broker at once (the rest wait in Redis)")
    history_flush_tasks: int = Field(default=200, ge=1,
                                     description="settled tasks that trigger a bulk run-history write")
    history_flush_seconds: float = Field(default=10.0, ge=0,
                                         description="oldest unwritten settled task age that triggers a write")

    @field_validator("broker_url")
    @classmethod
    def _broker_url_parses(cls, value: SecretStr) -> SecretStr:
        """A broker URL whose port is not a number must stop every command at once, before a run is
        recorded in Redis that no message can ever reach (kombu would raise deep inside a send)."""
        url = value.get_secret_value()
        if url:
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - parsing the port is the check
            except ValueError as exc:
                raise ValueError(f"{redact_url(url)} is not a broker URL ({exc}); expected "
                                 "amqp://user:password@host:5672// or redis://[:password@]host:port/db") from None
            if not parts.scheme or not parts.netloc:
                raise ValueError(f"{redact_url(url)} is not a broker URL; expected amqp://user:password@host:5672// "
                                 "or redis://[:password@]host:port/db")
        return value

    @property
    def warehouse_url(self) -> str:
        return self.warehouse or f"duckdb:///{(self.home / 'warehouse.duckdb').as_posix()}"

    @property
    def redis_url_value(self) -> str:
        return self.redis_url.get_secret_value()

    @property
    def broker_url_value(self) -> str:
        """The broker: BACKFILL_BROKER_URL when set (RabbitMQ), else the Redis that holds run state."""
        return self.broker_url.get_secret_value() or self.redis_url_value or DEFAULT_REDIS_URL


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def secret_environment(markers: Iterable[str]) -> dict[str, str]:
    """Environment variables whose names contain one of `markers` (PASSWORD, TOKEN ...).

    The Sentry scrubber must know every secret of the process, including ones no Setting
    names (a cloud SDK's token); this module is the one place that reads the environment.
    """
    upper = tuple(m.upper() for m in markers)
    return {k: v for k, v in os.environ.items() if v and any(m in k.upper() for m in upper)}


def redact_url(url: str) -> str:
    """Drop the password from a URL so it can be shown in logs, status and reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    # The host and port as written: `parts.port` raises on `:notaport` or `:99999`, and a URL
    # that is wrong must still be shown (redacted) in the message that says it is wrong.
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    netloc = f"{user}:***@{host}" if user else f":***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
