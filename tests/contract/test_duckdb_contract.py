"""The warehouse contract against real DuckDB files, holding the file open and opening it per call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backfill.warehouse.duckdb import DuckDBWarehouse

from .warehouse_contract import WarehouseContract


class TestDuckDBContract(WarehouseContract):
    @pytest.fixture(params=[True, False], ids=["held", "per-call"])
    def warehouse(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DuckDBWarehouse]:
        wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb", hold=request.param)
        yield wh
        wh.close()


def test_a_file_named_like_a_dataset_is_not_ambiguous(tmp_path: Path) -> None:
    """DuckDB names a file's catalog after the file; `nba_analytics.duckdb` must still hold `nba_analytics.*`."""
    import datetime as dt

    from backfill.warehouse import schema

    wh = DuckDBWarehouse(tmp_path / "nba_analytics.duckdb")
    table = schema("nba_analytics.t", "d", ("d", "DATE", True), ("x", "INT64"))
    wh.create_table(table)
    wh.insert_rows("nba_analytics.t", [{"d": dt.date(2024, 1, 1), "x": 1}])
    written = wh.replace_partitions(table, [dt.date(2024, 1, 2)], "SELECT DATE '2024-01-02' AS d, 2 AS x")
    wh.merge_rows(table, [{"d": dt.date(2024, 1, 1), "x": 3}], ["d"])
    assert written == 1
    assert wh.query("SELECT x FROM nba_analytics.t ORDER BY d") == [{"x": 3}, {"x": 2}]
    assert wh.row_counts("nba_analytics.t", "d") == {dt.date(2024, 1, 1): 1, dt.date(2024, 1, 2): 1}
    assert wh.table_exists("nba_analytics.t") and wh.table_columns("nba_analytics.t") == {"d": "DATE", "x": "INT64"}
    wh.close()
