"""`sql:` processors: one BigQuery statement per write, replacing the dates' partitions atomically."""

from __future__ import annotations

from backfill.processors.base import Invocation, Reply


class SqlKind:
    def __init__(self, sql: str) -> None:
        self.sql = sql

    def write(self, inv: Invocation) -> Reply:
        # Options reach the SQL as query parameters; a warehouse binds only those the text uses.
        params = {**inv.options, "start_date": min(inv.dates), "end_date": max(inv.dates)}
        n = inv.warehouse.replace_partitions(inv.table, inv.dates, self.sql, params, labels=inv.labels)
        return Reply(rows_claimed=n)
