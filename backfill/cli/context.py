"""What every command needs: the settings, and lazily opened warehouse and spec."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backfill.errors import BadInput
from backfill.settings import Settings
from backfill.spec import PipelineSpec, load_spec
from backfill.warehouse import Warehouse, open_warehouse


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
            raise BadInput(f"invalid setting {field_name} (BACKFILL_{field_name.upper()}): {first['msg']}",
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

    def spec(self, pipeline: str | None) -> PipelineSpec:
        return load_spec(pipeline or self.settings.pipeline)

    def close(self) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None
