"""Warehouses: DuckDB (embedded default) and BigQuery (production), behind one interface."""

from __future__ import annotations

from typing import Any

from backfill.errors import BadInput, CannotConnect
from backfill.warehouse.base import Row, Warehouse
from backfill.warehouse.schema import Column, TableSchema, check_identifier, check_table_name, schema

__all__ = ["Column", "Row", "TableSchema", "Warehouse", "check_identifier", "check_table_name",
           "open_warehouse", "schema"]


def open_warehouse(url: str, *, create: bool = True, **kwargs: Any) -> Warehouse:
    """Build a warehouse from `duckdb:///path.duckdb` or `bigquery://project[/location]`.

    With `create=False` a missing DuckDB file is "no warehouse at PATH" (exit 3) rather than a new
    empty file, so commands that only read (plan, gaps, validate, report) change nothing when
    pointed at the wrong path; `read_only=True` (DuckDB) also opens a file the user may not write.
    """
    if url.startswith("duckdb://"):
        from pathlib import Path

        from backfill.warehouse.duckdb import DuckDBWarehouse

        path = url.removeprefix("duckdb:///") if url.startswith("duckdb:///") else url.removeprefix("duckdb://")
        if not path or Path(path).is_dir():
            raise BadInput(f"warehouse URL {url!r} names {'a folder' if path else 'no file'}",
                           hint="name the DuckDB file: duckdb:///relative/path.duckdb or duckdb:////absolute/path.duckdb")
        if not create and path != ":memory:" and not Path(path).is_file():
            raise CannotConnect(f"no warehouse at {path}",
                                hint="check --warehouse / BACKFILL_WAREHOUSE, or load raw data first: "
                                     "`backfill data sample` or `backfill data import-nba DIR`")
        return DuckDBWarehouse(path, **kwargs)
    if url.startswith("bigquery://"):
        from backfill.warehouse.bigquery import BigQueryWarehouse

        return BigQueryWarehouse.from_url(url)
    raise BadInput(f"unknown warehouse URL {url!r}: use duckdb:///path.duckdb or bigquery://project")
