"""processor_run_history: the durable record of every task attempt, modelled on the users' table.

Rows are appended in bulk (one write per `history_flush_tasks` settled tasks or
`history_flush_seconds`, never one per task: per-task load jobs are
what exhausted the users' BigQuery quotas). Nothing is updated in place, so there are no
stale `running` rows to clean up: the latest row per (processor, date) is the truth.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from backfill.calendar import Calendar
from backfill.outcome import TaskOutcome
from backfill.spec import DEFAULT_RUN_HISTORY_TABLE
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema, check_table_name, schema

STATUSES = tuple(TaskOutcome)
# Only `success` is done: a partial partition is written but short of what was expected, so
# `gaps` lists it and `enqueue` runs it again rather than skipping it as finished.
DONE_STATUSES = (TaskOutcome.success,)
HISTORY_KEY = ("run_id", "task_id", "data_date", "attempt")


def history_schema(table: str = DEFAULT_RUN_HISTORY_TABLE) -> TableSchema:
    return schema(
        table, "data_date",
        ("processor_name", "STRING", True), ("phase", "INT64", True), ("data_date", "DATE", True),
        ("season", "STRING"), ("run_id", "STRING", True), ("task_id", "STRING", True),
        ("status", "STRING", True), ("attempt", "INT64"), ("records_processed", "INT64"),
        ("duration_seconds", "FLOAT64"), ("started_at", "TIMESTAMP"), ("finished_at", "TIMESTAMP"),
        ("error_category", "STRING"), ("error_message", "STRING"), ("warnings", "JSON"),
        ("backfill_mode", "BOOL"), ("bootstrap", "BOOL"), ("wave", "INT64"),
        # A fingerprint of the processor's code when the row was written: `stale` partitions.
        ("code_version", "STRING"),
        cluster=("processor_name", "status"))


class RunHistory:
    """Bulk writes and the queries the planner, `gaps` and `resume` need."""

    def __init__(self, warehouse: Warehouse, table: str = DEFAULT_RUN_HISTORY_TABLE) -> None:
        check_table_name(table)
        self.warehouse = warehouse
        self.table = table
        self.schema = history_schema(table)
        self._columns_checked = False

    def ensure(self) -> None:
        """Create the table, or add the columns a table written by an older version lacks."""
        self.warehouse.create_table(self.schema)
        self.warehouse.add_columns(self.schema)
        self._columns_checked = True

    def write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write many rows in one bulk upsert keyed on (run, task, date, attempt).

        Keyed, so a flush that is repeated after writing (a worker killed between the
        write and marking it done) replaces its own rows instead of duplicating them.
        """
        if not rows:
            return 0
        if not self._columns_checked:
            self.ensure()
        cols = self.schema.column_names
        return self.warehouse.merge_rows(self.schema, [{c: r.get(c) for c in cols} for r in rows], HISTORY_KEY)

    def latest(self, start: dt.date | None = None, end: dt.date | None = None,
               processors: Iterable[str] | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
        """The latest row per (processor, date), optionally within a range / for some processors / a run."""
        if not self.warehouse.table_exists(self.table):
            return []
        where: list[str] = ["1 = 1"]
        params: dict[str, Any] = {}
        if start is not None:
            where.append("data_date >= @start")
            params["start"] = start
        if end is not None:
            where.append("data_date <= @end")
            params["end"] = end
        if run_id is not None:
            where.append("run_id = @run_id")
            params["run_id"] = run_id
        procs = sorted(processors) if processors is not None else None
        if procs is not None:
            where.append("processor_name IN UNNEST(@processors)")
            params["processors"] = procs
        sql = (f"SELECT * FROM {self.table} WHERE {' AND '.join(where)} "
               "QUALIFY ROW_NUMBER() OVER (PARTITION BY processor_name, data_date "
               "ORDER BY finished_at DESC, attempt DESC) = 1")
        return self.warehouse.query(sql, params)

    def completed(self, start: dt.date | None = None, end: dt.date | None = None,
                  processors: Iterable[str] | None = None) -> frozenset[tuple[str, dt.date]]:
        """(processor, date) whose latest attempt succeeded: the planner's skip set."""
        return frozenset((r["processor_name"], r["data_date"]) for r in self.latest(start, end, processors)
                         if r["status"] in DONE_STATUSES)

    def gaps(self, calendar: Calendar, processors: Iterable[str], start: dt.date,
             end: dt.date) -> list[tuple[str, dt.date]]:
        """(processor, game date) in [start, end] whose latest attempt is not `success`.

        Only the schedule's game dates can be gaps, so off-days and the All-Star break never are.
        A `partial` date is a gap too: its rows are written, but fewer than expected (its record
        says why); `gaps` lists the reason, and a rerun after the raw data is fixed fills it.
        """
        names = sorted(set(processors))
        done = self.completed(start, end, names)
        return [(name, day) for day in calendar.game_dates_between(start, end) for name in names
                if (name, day) not in done]

    def status_counts(self, start: dt.date | None = None, end: dt.date | None = None,
                      processors: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
        """processor -> latest status -> number of dates (a processor's success rate at a glance)."""
        out: dict[str, dict[str, int]] = {}
        for r in self.latest(start, end, processors):
            per = out.setdefault(r["processor_name"], {})
            per[r["status"]] = per.get(r["status"], 0) + 1
        return out

    def task_samples(self, limit: int = 20000) -> list[tuple[str, int, float]]:
        """(processor, dates in the task, task seconds) of done task attempts: the batching model's data.

        Each row holds its task's seconds divided by the task's dates, so the sum over a task's
        rows is the task's duration and their count its batch size.
        """
        if not self.warehouse.table_exists(self.table):
            return []
        rows = self.warehouse.query(
            f"SELECT processor_name, COUNT(*) AS n, SUM(duration_seconds) AS s FROM {self.table} "
            "WHERE status IN UNNEST(@wrote) AND duration_seconds IS NOT NULL "
            f"GROUP BY processor_name, run_id, task_id, attempt ORDER BY MAX(finished_at) DESC LIMIT {int(limit)}",
            {"wrote": [o.value for o in TaskOutcome if o.wrote]})
        return [(r["processor_name"], int(r["n"]), float(r["s"])) for r in rows if r["s"] is not None]

    def durations(self) -> dict[str, float]:
        """Median-ish seconds per date per processor from successful runs (feeds plan estimates)."""
        if not self.warehouse.table_exists(self.table):
            return {}
        rows = self.warehouse.query(
            f"SELECT processor_name, AVG(duration_seconds) AS s FROM {self.table} "
            "WHERE status = @success AND duration_seconds IS NOT NULL GROUP BY 1",
            {"success": TaskOutcome.success.value})
        return {r["processor_name"]: float(r["s"]) for r in rows if r["s"] is not None}


def stamp(value: Any) -> float | None:
    """A run-history timestamp (datetime, or ISO text from a warehouse that returns text) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()
