"""One Settings object, read from flags, then BACKFILL_* env vars, then defaults.

It is built once by the CLI (or a worker's app factory) and passed explicitly; nothing in
the library reads the environment on its own.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
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
    max_retries: int = Field(default=5, ge=0, le=50)
    retry_backoff_seconds: float = Field(default=2.0, ge=0)
    sentry_dsn: SecretStr = Field(default=SecretStr(""))
    alerts: str = Field(default="digest", pattern="^(digest|immediate|off)$")

    @property
    def warehouse_url(self) -> str:
        return self.warehouse or f"duckdb:///{(self.home / 'warehouse.duckdb').as_posix()}"

    @property
    def redis_url_value(self) -> str:
        return self.redis_url.get_secret_value()


def redact_url(url: str) -> str:
    """Drop the password from a URL so it can be shown in logs, status and reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    netloc = f"{user}:***@{host}" if user else f":***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
