"""What every command needs: the settings, and lazily opened warehouse and spec."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backfill.errors import BadInput
from backfill.settings import Settings
from backfill.spec import PipelineSpec, load_spec
from backfill.warehouse import Warehouse, open_warehouse

# How long a command keeps a DuckDB file it opened per operation (`hold=False`) before letting go
# between two operations: a command opens it a few times instead of once per read, and a worker
# waiting for the file waits about this long at most.
LINGER_SECONDS = 1.0


def duckdb_reader(url: str, *, read_only: bool = True, snapshot: bool = True) -> Warehouse:
    """A DuckDB warehouse for a command that only reads: never created (a missing file is "no
    warehouse at PATH", exit 3), opened read-only (a file the user may not write still opens) and
    per operation, lingering LINGER_SECONDS (workers may own it between tasks); while a worker holds
    it, a private copy of it instead of a wait. `validate` writes scratch tables for its spot
    checks (`read_only=False`); `snapshot=False` when a write must reach the file itself."""
    return open_warehouse(url, create=False, hold=False, read_only=read_only, snapshot=snapshot, wait_notice=True,
                          linger=LINGER_SECONDS)


@dataclass
class CliContext:
    settings: Settings
    debug: bool = False
    _warehouse: Warehouse | None = field(default=None, repr=False)

    @classmethod
    def build(cls, *, home: str | None, warehouse: str | None, redis_url: str | None, debug: bool) -> CliContext:
        overrides: dict[str, Any] = {}
        if home:
            overrides["home"] = Path(home)
        if warehouse:
            overrides["warehouse"] = warehouse
        if redis_url:
            overrides["redis_url"] = redis_url
        try:
            settings = Settings(**overrides)
        except ValidationError as exc:
            first = exc.errors()[0]
            field_name = str(first["loc"][0]) if first.get("loc") else "setting"
            message = str(first["msg"]).removeprefix("Value error, ")
            raise BadInput(f"invalid setting {field_name} (BACKFILL_{field_name.upper()}): {message}",
                           hint="fix the flag or environment variable") from None
        return cls(settings=settings, debug=debug)

    def warehouse(self, *, create: bool = False) -> Warehouse:
        """The configured warehouse; only commands that load data may create (or write) a DuckDB file:
        the others open it read-only, so a file they may not write still opens."""
        if self._warehouse is None:
            url = self.settings.warehouse_url
            extra: dict[str, bool] = {"wait_notice": True} if url.startswith("duckdb:") else {}
            if url.startswith("duckdb:") and not create:  # reads: a snapshot while a worker holds the file
                extra.update(read_only=True, snapshot=True)
            self._warehouse = open_warehouse(url, create=create, **extra)
        return self._warehouse

    def reader(self, *, read_only: bool = True, snapshot: bool = True) -> tuple[Warehouse, bool]:
        """The warehouse of a command that reads (`duckdb_reader` on DuckDB), and whether the caller
        closes it (True: its own; False: this context's shared warehouse)."""
        url = self.settings.warehouse_url
        if url.startswith("duckdb:"):
            return duckdb_reader(url, read_only=read_only, snapshot=snapshot), True
        return self.warehouse(), False

    def spec(self, pipeline: str | None) -> PipelineSpec:
        return load_spec(pipeline or self.settings.pipeline)

    def pipeline_dir(self, pipeline: str | None = None) -> Path:
        """The given or configured pipeline directory when it holds a pipeline.yaml, else the package
        installed under that path's name (`pipelines/nba` -> `pipelines.nba`, the reference pipeline),
        so `backfill demo` and `backfill data` work from any directory."""
        configured = Path(pipeline or self.settings.pipeline)
        if (configured / "pipeline.yaml").exists() or configured.is_file():
            return configured.resolve()
        if not configured.is_absolute() and all(part.isidentifier() for part in configured.parts):
            try:
                found = importlib.util.find_spec(".".join(configured.parts))
            except ImportError:
                found = None
            if found is not None and found.origin:
                return Path(found.origin).resolve().parent
        return configured

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None
