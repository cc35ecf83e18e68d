"""Warehouses: DuckDB (embedded default) and BigQuery (production), behind one interface."""

from __future__ import annotations

from typing import Any

from backfill.errors import BadInput
from backfill.warehouse.base import Row, Warehouse
from backfill.warehouse.schema import Column, TableSchema, check_identifier, check_table_name, schema

__all__ = ["Column", "Row", "TableSchema", "Warehouse", "check_identifier", "check_table_name",
           "open_warehouse", "schema"]


def open_warehouse(url: str, **kwargs: Any) -> Warehouse:
    """Build a warehouse from `duckdb:///path.duckdb` or `bigquery://project[/location]`."""
    if url.startswith("duckdb://"):
        from backfill.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(url.removeprefix("duckdb:///") if url.startswith("duckdb:///")
                               else url.removeprefix("duckdb://"), **kwargs)
    if url.startswith("bigquery://"):
        from backfill.warehouse.bigquery import BigQueryWarehouse

        return BigQueryWarehouse.from_url(url)
    raise BadInput(f"unknown warehouse URL {url!r}: use duckdb:///path.duckdb or bigquery://project")
