"""A fault-injecting Warehouse for tests and benchmarks: quota errors and slow writes on demand.

It raises *before* delegating, as BigQuery does when it refuses a job, so an injected failure
never leaves partial work behind and the engine's retry path is tested honestly. It is not
part of the production code path: a worker gets it only through the test entry module
`tests.support.faulty_app` (`create_app(settings, warehouse_factory=...)`).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from backfill.errors import QuotaExceeded
from backfill.warehouse.base import Row, Warehouse
from backfill.warehouse.schema import TableSchema


class FaultyWarehouse(Warehouse):
    """Delegates to `inner`; `query`, `execute` and `replace_partitions` fail with `quota_rate`."""

    def __init__(self, inner: Warehouse, quota_rate: float, seed: int | None = None,
                 slow_tables: Mapping[str, float] | None = None) -> None:
        if not 0.0 <= quota_rate <= 1.0:
            raise ValueError(f"quota_rate must be within [0, 1], got {quota_rate}")
        self.inner = inner
        self.quota_rate = quota_rate
        self.slow_tables = dict(slow_tables or {})  # table name -> seconds each partition replace sleeps
        self.kind = inner.kind
        self.injected = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # workers on the threads pool share one instance

    def _maybe_fail(self, operation: str) -> None:
        with self._lock:
            fail = self._rng.random() < self.quota_rate
            if fail:
                self.injected += 1
        if fail:
            raise QuotaExceeded(f"Quota exceeded: (injected) in {operation}")

    def query(self, sql: str, params: Mapping[str, Any] | None = None, *,
              labels: Mapping[str, str] | None = None) -> list[Row]:
        self._maybe_fail("query")
        return self.inner.query(sql, params, labels=labels)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *,
                labels: Mapping[str, str] | None = None) -> None:
        self._maybe_fail("execute")
        self.inner.execute(sql, params, labels=labels)

    def replace_partitions(self, table: TableSchema, dates: Sequence[dt.date], select_sql: str,
                           params: Mapping[str, Any] | None = None, *,
                           labels: Mapping[str, str] | None = None) -> int:
        self._maybe_fail("replace_partitions")
        if table.name in self.slow_tables:  # a slow processor (a long BigQuery job)
            time.sleep(self.slow_tables[table.name])
        return self.inner.replace_partitions(table, dates, select_sql, params, labels=labels)

    def create_table(self, table: TableSchema) -> None:
        self.inner.create_table(table)

    def table_exists(self, name: str) -> bool:
        return self.inner.table_exists(name)

    def table_columns(self, name: str) -> dict[str, str]:
        return self.inner.table_columns(name)

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        return self.inner.insert_rows(table, rows)

    def merge_rows(self, table: TableSchema, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> int:
        return self.inner.merge_rows(table, rows, keys)

    def _merge_unique(self, table: TableSchema, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> int:
        return self.inner.merge_rows(table, rows, keys)

    def row_counts(self, table: str, date_column: str, start: dt.date | None = None,
                   end: dt.date | None = None) -> dict[dt.date, int]:
        # Straight to inner: the base implementation would go through our faulty query().
        return self.inner.row_counts(table, date_column, start, end)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # Anything a concrete warehouse adds beyond the interface (path, project, ...).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
