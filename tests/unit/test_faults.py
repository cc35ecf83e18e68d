"""The fault-injecting warehouse fails before any work is done, and only where it is told to."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from backfill.errors import QuotaExceeded
from backfill.warehouse.duckdb import DuckDBWarehouse
from backfill.warehouse.schema import Column, TableSchema
from tests.support.faults import FaultyWarehouse

T = TableSchema("ds.t", (Column("d", "DATE"), Column("n", "INT64")), partition="d")
D = dt.date(2023, 11, 1)


def test_injected_quota_error_leaves_no_partial_work(tmp_path: Path) -> None:
    inner = DuckDBWarehouse(tmp_path / "w.duckdb")
    inner.create_table(T)
    faulty = FaultyWarehouse(inner, quota_rate=1.0)
    with pytest.raises(QuotaExceeded, match=r"Quota exceeded: \(injected\)"):
        faulty.replace_partitions(T, [D], "SELECT DATE '2023-11-01' AS d, 1 AS n")
    with pytest.raises(QuotaExceeded):
        faulty.query("SELECT 1 AS x")
    assert inner.row_counts("ds.t", "d") == {}
    assert faulty.row_counts("ds.t", "d") == {}, "reads for summaries are not faulted"
    assert faulty.injected == 2
    faulty.close()


def test_rate_zero_is_the_inner_warehouse_and_seeds_repeat(tmp_path: Path) -> None:
    inner = DuckDBWarehouse(tmp_path / "w.duckdb")
    inner.create_table(T)
    ok = FaultyWarehouse(inner, quota_rate=0.0)
    assert ok.replace_partitions(T, [D], "SELECT DATE '2023-11-01' AS d, 1 AS n") == 1
    assert ok.kind == "duckdb" and ok.path == inner.path

    def pattern(seed: int) -> list[bool]:
        w = FaultyWarehouse(inner, quota_rate=0.3, seed=seed)
        out = []
        for _ in range(50):
            try:
                w.query("SELECT 1 AS x")
                out.append(True)
            except QuotaExceeded:
                out.append(False)
        return out

    assert pattern(7) == pattern(7)
    assert 5 <= pattern(7).count(False) <= 30
    inner.close()
