"""The run history is keyed: a redelivered wave write replaces its own rows, never duplicates them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from backfill.runhistory import RunHistory
from backfill.warehouse.duckdb import DuckDBWarehouse


def _row(day: int, status: str, attempt: int, run: str = "r1") -> dict:
    return {"processor_name": "pgs", "phase": 3, "data_date": dt.date(2023, 11, day), "season": "2023-24",
            "run_id": run, "task_id": f"pgs@2023-11-{day:02d}", "status": status, "attempt": attempt,
            "finished_at": dt.datetime(2023, 12, 1, 0, 0, attempt, tzinfo=dt.UTC), "warnings": ["w"]}


def test_writing_the_same_wave_twice_keeps_one_row_per_attempt(tmp_path: Path) -> None:
    history = RunHistory(DuckDBWarehouse(tmp_path / "w.duckdb"))
    wave = [_row(1, "failed", 1), _row(1, "success", 2), _row(2, "success", 1)]
    history.write(wave)
    history.write(wave)
    rows = history.warehouse.query(f"SELECT * FROM {history.table}")
    assert len(rows) == 3
    assert history.completed() == {("pgs", dt.date(2023, 11, 1)), ("pgs", dt.date(2023, 11, 2))}


def test_latest_attempt_wins_across_runs(tmp_path: Path) -> None:
    history = RunHistory(DuckDBWarehouse(tmp_path / "w.duckdb"))
    history.write([_row(3, "success", 1, run="r1")])
    history.write([_row(3, "failed", 2, run="r2")])
    assert history.completed() == frozenset()
    assert [r["status"] for r in history.latest()] == ["failed"]
