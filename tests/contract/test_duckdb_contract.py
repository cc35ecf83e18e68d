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
