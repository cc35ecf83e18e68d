"""The run history: the users' own table, one row builder for every outcome, keyed writes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from backfill.planner.model import Task
from backfill.runhistory import RowContext, RunHistory, build_rows, history_schema
from backfill.warehouse.duckdb import DuckDBWarehouse
from backfill.warehouse.schema import schema

D1, D2 = dt.date(2023, 11, 1), dt.date(2023, 11, 2)
CONTEXT = RowContext({3: "phase_3_analytics"}, {"pgs": "nba_analytics.player_game_summary"})
AT = dt.datetime(2023, 12, 1, tzinfo=dt.UTC)


def _row(day: int, status: str, attempt: int, run: str = "r1") -> dict:
    return {"processor_name": "pgs", "phase": "phase_3_analytics", "data_date": dt.date(2023, 11, day),
            "season": "2023-24", "run_id": run, "task_id": f"pgs@2023-11-{day:02d}", "status": status,
            "outcome": status, "retry_attempt": attempt, "started_at": AT,
            "processed_at": dt.datetime(2023, 12, 1, 0, 0, attempt, tzinfo=dt.UTC), "warnings": ["w"]}


def _task(dates: tuple[dt.date, ...] = (D1, D2)) -> Task:
    return Task(f"pgs@{dates[0]}", "pgs", 3, "2023-24", dates, (), False, 1, 1.0)


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


def test_a_result_becomes_their_vocabulary_with_ours_beside_it() -> None:
    result = {"status": "failed", "attempt": 2, "duration_seconds": 4.0, "started_at": AT.isoformat(),
              "finished_at": (AT + dt.timedelta(seconds=4)).isoformat(), "warnings": ["slow"],
              "status_by_date": {"2023-11-01": "success", "2023-11-02": "failed"},
              "issues_by_date": {"2023-11-02": ["dependency_gap", "upstream partitions missing: x@2023-11-01"]},
              "rows_by_date": {"2023-11-01": 7}, "options": {"backfill_mode": False, "strict_mode": False},
              "checks_by_date": {"2023-11-02": {"passed": False, "missing": ["x@2023-11-01 (never ran)"],
                                                "upstream": [{"processor": "x", "present": 0, "needed": 1}]}}}
    ok, bad = build_rows(_task(), "run-1", CONTEXT, result=result)
    assert (ok["status"], ok["success"], ok["failure_category"], ok["records_processed"]) == ("success", True, None, 7)
    assert (bad["status"], bad["success"], bad["failure_category"], bad["error_category"]) == (
        "failed", False, "upstream_failure", "dependency_gap")
    assert bad["dependency_check_passed"] is False and json.loads(bad["missing_dependencies"]) == [
        "x@2023-11-01 (never ran)"]
    for r in (ok, bad):
        assert (r["phase"], r["season_year"], r["retry_attempt"], r["triggered_by"]) == (
            "phase_3_analytics", 2023, 2, "backfill")
        assert (r["output_dataset"], r["output_table"]) == ("nba_analytics", "player_game_summary")
        assert r["backfill_mode"] is False and json.loads(r["options"])["strict_mode"] is False
        assert r["started_at"] == AT and r["processed_at"] == AT + dt.timedelta(seconds=4)
        assert r["duration_seconds"] == 2.0


def test_a_task_that_never_ran_still_has_started_at_and_says_why_it_skipped() -> None:
    for outcome in ("blocked", "cancelled", "revoked"):
        rows = build_rows(_task(), "run-1", CONTEXT, outcome=outcome, category="dependency_gap",
                          message="upstream x failed", at=AT, options={"backfill_mode": True})
        assert [(r["status"], r["skipped"], r["outcome"], r["started_at"], r["processed_at"]) for r in rows] == [
            ("skipped", True, outcome, AT, AT)] * 2
        assert rows[0]["skip_reason"] == f"{outcome}: upstream x failed" and rows[0]["backfill_mode"] is True


THEIRS = """CREATE TABLE nba_reference.processor_run_history (
  processor_name STRING NOT NULL, run_id STRING NOT NULL, season_year INT64, status STRING NOT NULL,
  errors JSON, data_date DATE NOT NULL, started_at TIMESTAMP NOT NULL, processed_at TIMESTAMP, phase {phase})"""


def test_their_table_gains_our_columns_keeps_theirs_and_their_names_count_as_ours(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.execute("CREATE SCHEMA nba_reference")
    wh.execute(THEIRS.format(phase="STRING"))
    before = wh.table_columns("nba_reference.processor_run_history")
    wh.execute("INSERT INTO nba_reference.processor_run_history VALUES ('PlayerGameSummaryProcessor', 'theirs', "
               "2023, 'success', NULL, DATE '2023-11-01', TIMESTAMP '2023-11-02 08:00:00', "
               "TIMESTAMP '2023-11-02 08:03:00', 'phase_3_analytics'), ('PlayerGameSummaryProcessor', 'theirs', "
               "2023, 'running', NULL, DATE '2023-11-01', TIMESTAMP '2023-11-03 08:00:00', NULL, "
               "'phase_3_analytics')")
    history = RunHistory(wh, "nba_reference.processor_run_history", {"PlayerGameSummaryProcessor": "pgs"})
    assert history.problems() == []
    history.write(build_rows(_task((D2,)), "ours", CONTEXT, outcome="blocked", message="upstream failed", at=AT))
    after = wh.table_columns("nba_reference.processor_run_history")
    assert {c: after[c] for c in before} == before and set(history_schema().column_names) <= set(after)
    # Their success counts as done and as adopted; their later `running` row is no outcome.
    assert history.completed(processors=["pgs"]) == {("pgs", D1)}
    assert history.adopted(processors=["pgs"]) == {("pgs", D1)}
    theirs = wh.query("SELECT run_id, status FROM nba_reference.processor_run_history WHERE run_id = 'theirs' "
                      "ORDER BY status")
    assert theirs == [{"run_id": "theirs", "status": "running"}, {"run_id": "theirs", "status": "success"}]


def test_a_column_that_cannot_hold_what_we_write_is_named(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "w.duckdb")
    wh.execute("CREATE SCHEMA nba_reference")
    wh.execute(THEIRS.format(phase="INT64"))
    problems = RunHistory(wh, "nba_reference.processor_run_history").problems()
    assert len(problems) == 1 and "nba_reference.processor_run_history.phase is INT64" in problems[0]
    wh.create_table(schema("a.h", "data_date", ("data_date", "DATE"), ("errors", "STRING"),
                           ("duration_seconds", "FLOAT64")))
    assert RunHistory(wh, "a.h").problems() == []  # STRING holds JSON text; nothing else is ours there
