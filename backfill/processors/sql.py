"""`sql:` processors: one BigQuery statement per write, replacing the dates' partitions atomically."""

from __future__ import annotations

import datetime as dt

from backfill.processors.base import Invocation, Reply

UNPRUNED_LOOKBACK = dt.timedelta(days=366)  # a season lasts under a year


class SqlKind:
    def __init__(self, sql: str) -> None:
        self.sql = sql

    def write(self, inv: Invocation) -> Reply:
        # Options reach the SQL as query parameters; a warehouse binds only those the text uses.
        # `window_start` bounds the upstream scan (the executor computes it from the calendar);
        # a caller without a calendar (a spot check) gets the old unpruned year of history.
        first = min(inv.dates)
        params = {**inv.options, "start_date": first, "end_date": max(inv.dates),
                  "window_start": inv.window_start or first - UNPRUNED_LOOKBACK}
        n = inv.warehouse.replace_partitions(inv.table, inv.dates, self.sql, params, labels=inv.labels)
        return Reply(rows_claimed=n)
