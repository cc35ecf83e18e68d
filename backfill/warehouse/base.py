"""The Warehouse interface: the few operations the engine needs, honest for DuckDB and BigQuery.

SQL handed to a warehouse is always BigQuery Standard SQL (`dataset.table`, `@param`); an
implementation translates it if it speaks another dialect.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from backfill.warehouse.schema import Column, TableSchema

Row = dict[str, Any]


class Warehouse(ABC):
    """A place that runs BigQuery-dialect SQL and holds date-partitioned tables."""

    kind: str = "abstract"

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None, *,
              labels: Mapping[str, str] | None = None) -> list[Row]:
        """Run a SELECT and return its rows as dicts."""

    @abstractmethod
    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *,
                labels: Mapping[str, str] | None = None) -> None:
        """Run a statement that returns nothing (DDL, DML)."""

    @abstractmethod
    def create_table(self, table: TableSchema) -> None:
        """Create the table (and its dataset) if it does not exist yet."""

    @abstractmethod
    def table_exists(self, name: str) -> bool:
        """Whether `dataset.table` exists."""

    @abstractmethod
    def table_columns(self, name: str) -> dict[str, str]:
        """Column name -> BigQuery type of an existing table (for schema-drift checks)."""

    @abstractmethod
    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Append rows in one bulk write (one load job on BigQuery); returns rows written."""

    @abstractmethod
    def replace_partitions(self, table: TableSchema, dates: Sequence[dt.date], select_sql: str,
                           params: Mapping[str, Any] | None = None, *,
                           labels: Mapping[str, str] | None = None) -> int:
        """Atomically replace the partitions `dates` of `table` with the rows of `select_sql`.

        Rows the query returns outside `dates` are discarded, so a task can never write a
        partition it does not own. Idempotent: running it twice leaves one copy of each row.
        Returns the number of rows written.
        """

    def replace_partitions_with_rows(self, table: TableSchema, dates: Sequence[dt.date],
                                     rows: Sequence[Mapping[str, Any]]) -> int:
        """Atomically replace the partitions `dates` of `table` with `rows` computed outside SQL.

        The rows are loaded into a scratch table first (one bulk load), then swapped in by
        `replace_partitions`, so a failed load changes nothing and a rerun never duplicates.
        """
        import uuid

        from backfill.warehouse.schema import check_table_name

        dataset, name = check_table_name(table.name)
        stage = TableSchema(f"{dataset}._stage_{name}_{uuid.uuid4().hex[:12]}", table.columns)
        self.create_table(table)
        self.create_table(stage)
        try:
            if rows:
                self.insert_rows(stage.name, [{c: r.get(c) for c in table.column_names} for r in rows])
            return self.replace_partitions(table, dates, f"SELECT * FROM {stage.name}")
        finally:
            self.execute(f"DROP TABLE IF EXISTS {stage.name}")

    def merge_rows(self, table: TableSchema, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> int:
        """Insert rows, replacing existing rows with the same key (idempotent bulk upsert).

        Keys are validated before anything runs, and two rows with one key collapse to the
        last (BigQuery's MERGE refuses duplicates; every warehouse behaves the same way).
        Returns the number of rows written.
        """
        from backfill.warehouse.schema import check_identifier

        for k in keys:
            check_identifier(k, "column name")
        if not rows:
            return 0
        latest = list({tuple(r.get(k) for k in keys): r for r in rows}.values())
        self.create_table(table)
        return self._merge_unique(table, latest, keys)

    def add_columns(self, table: TableSchema) -> list[str]:
        """Add the columns of `table` that the existing table lacks; returns their names.

        Tables outlive the code that created them (a run history written before a column was
        added to its schema must keep working). Added columns are NULL in old rows and nullable,
        as BigQuery requires; adding again is harmless.
        """
        have = self.table_columns(table.name)
        missing = [c for c in table.columns if c.name not in have]
        for column in missing:
            self._add_column(table.name, column)
        return [c.name for c in missing]

    def _add_column(self, table: str, column: Column) -> None:
        """BigQuery DDL; a warehouse with other type names overrides this."""
        from backfill.warehouse.schema import check_identifier, check_table_name

        check_table_name(table)
        check_identifier(column.name, "column name")
        self.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column.name} {column.type}")

    @abstractmethod
    def _merge_unique(self, table: TableSchema, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> int:
        """Upsert rows whose keys are unique into an existing table, atomically."""

    def row_counts(self, table: str, date_column: str, start: dt.date | None = None,
                   end: dt.date | None = None) -> dict[dt.date, int]:
        """Rows per partition date, for gap checks and summaries."""
        from backfill.warehouse.schema import check_identifier, check_table_name

        check_table_name(table)
        check_identifier(date_column, "column name")
        where, params = [], {}
        if start is not None:
            where.append(f"{date_column} >= @start")
            params["start"] = start
        if end is not None:
            where.append(f"{date_column} <= @end")
            params["end"] = end
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {date_column} AS d, COUNT(*) AS n FROM {table}{clause} GROUP BY 1 ORDER BY 1"
        rows = self.query(sql, params)
        return {r["d"]: int(r["n"]) for r in rows}

    def close(self) -> None:  # noqa: B027 - optional hook, most warehouses hold nothing
        """Release connections."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
