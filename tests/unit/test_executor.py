"""execute_task on a tiny two-processor pipeline over a real DuckDB file: outcomes as data."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from backfill.calendar import Calendar
from backfill.checks import UpstreamCheck
from backfill.errors import QuotaExceeded, TransientWarehouseError, WarehouseError
from backfill.executor import TaskResult, execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.planner.model import Task
from backfill.runhistory import RunHistory
from backfill.spec import PipelineSpec, load_spec
from backfill.warehouse.duckdb import DuckDBWarehouse
from backfill.warehouse.schema import TableSchema, schema
from tests.support.history import rows_of

D1, D2, D4 = dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 4)  # Jan 3 is an off-day
SCHEDULE = schema("nba_raw.schedule", "game_date", ("game_id", "STRING", True), ("game_date", "DATE", True),
                  ("season", "STRING", True), ("season_type", "STRING", True), ("home_team", "STRING", True),
                  ("away_team", "STRING", True))
BOX = schema("nba_raw.team_boxscores", "game_date", ("game_id", "STRING", True), ("game_date", "DATE", True),
             ("team", "STRING", True), ("points", "INT64"))
GAMES = [("g1", D1, "BOS", "NYK"), ("g2", D1, "LAL", "GSW"), ("g3", D2, "BOS", "MIA"), ("g4", D4, "NYK", "LAL")]

PIPELINE = """
name: mini
schedule_table: nba_raw.schedule
run_history_table: nba_reference.processor_run_history
raw_tables:
  nba_raw.schedule: {partition: game_date}
  nba_raw.team_boxscores: {partition: game_date, game: game_id, team: team}
processors:
  team_points:
    phase: 3
    target: nba_analytics.team_points
    expect: {rows_per_game: 2, every_team: team}
    sql: sql/team_points.sql
    key: [game_date, team]
    columns:
      game_date: {type: DATE, required: true}
      team: {type: STRING, required: true}
      points: {type: INT64, required: true}
    depends_on:
      - table: nba_raw.team_boxscores
        window: same_date
  running_points:
    phase: 4
    target: nba_precompute.running_points
    sql: sql/running_points.sql
    columns:
      game_date: DATE
      total: INT64
    depends_on:
      - processor: team_points
        window: {game_dates: 2, include_current: true}
"""
TEAM_POINTS = """SELECT game_date, team, points FROM nba_raw.team_boxscores
WHERE game_date BETWEEN @start_date AND @end_date"""
RUNNING = """SELECT d.game_date, SUM(p.points) AS total
FROM (SELECT DISTINCT game_date FROM nba_analytics.team_points WHERE game_date BETWEEN @start_date AND @end_date) d
JOIN nba_analytics.team_points p ON p.game_date <= d.game_date GROUP BY 1"""


@pytest.fixture
def pipeline(tmp_path: Path) -> PipelineSpec:
    root = tmp_path / "mini"
    (root / "sql").mkdir(parents=True)
    (root / "pipeline.yaml").write_text(PIPELINE)
    (root / "sql" / "team_points.sql").write_text(TEAM_POINTS)
    (root / "sql" / "running_points.sql").write_text(RUNNING)
    return load_spec(root)


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    w = DuckDBWarehouse(tmp_path / "w.duckdb")
    w.create_table(SCHEDULE)
    w.create_table(BOX)
    w.insert_rows(SCHEDULE.name, [{"game_id": g, "game_date": d, "season": "2023-24", "season_type": "regular",
                                   "home_team": h, "away_team": a} for g, d, h, a in GAMES])
    box = []
    for i, (g, d, h, a) in enumerate(GAMES):
        box += [{"game_id": g, "game_date": d, "team": h, "points": 100 + i},
                {"game_id": g, "game_date": d, "team": a, "points": 90 + i}]
    w.insert_rows(BOX.name, box)
    return w


def plan_tasks(spec: PipelineSpec, w: DuckDBWarehouse) -> list[Task]:
    plan = build_plan(spec, Calendar.from_warehouse(w, "nba_raw.schedule"), PlanRequest(ranges=((D1, D4),)))
    return list(plan.tasks())


def task(spec: PipelineSpec, w: DuckDBWarehouse, tid: str) -> Task:
    return next(t for t in plan_tasks(spec, w) if t.id == tid)


def test_success_counts_rows_per_date_and_rerun_changes_nothing(pipeline: PipelineSpec,
                                                                warehouse: DuckDBWarehouse) -> None:
    t = task(pipeline, warehouse, "team_points@2024-01-01")
    first = execute_task(t, warehouse, pipeline, run_id="r1")
    again = execute_task(t, warehouse, pipeline, run_id="r1", attempt=2)
    assert (first.status, first.rows, first.rows_by_date) == ("success", 4, {D1: 4})
    assert again.rows == 4 and again.attempt == 2
    assert warehouse.query("SELECT COUNT(*) AS n FROM nba_analytics.team_points")[0]["n"] == 4
    assert first.started_at is not None and first.started_at.tzinfo is not None
    assert first.error_category is None and first.warnings == []


def test_result_round_trips_through_json(pipeline: PipelineSpec, warehouse: DuckDBWarehouse) -> None:
    result = execute_task(task(pipeline, warehouse, "team_points@2024-01-02"), warehouse, pipeline)
    text = json.dumps(result.to_json())
    assert TaskResult.from_json(json.loads(text)) == result


def test_history_rows_are_one_per_date(pipeline: PipelineSpec, warehouse: DuckDBWarehouse) -> None:
    t = task(pipeline, warehouse, "team_points@2024-01-01")
    batch = Task("team_points@2024-01-01", t.processor, t.phase, t.season, (D1, D2), (), False, 0, 1.0)
    result = execute_task(batch, warehouse, pipeline)
    rows = rows_of(result, batch, "run-1")
    assert [(r["data_date"], r["records_processed"], r["status"]) for r in rows] == [(D1, 4, "success"),
                                                                                    (D2, 2, "success")]
    history = RunHistory(warehouse, "nba_reference.processor_run_history")
    assert history.write(rows) == 2
    assert history.completed() == {("team_points", D1), ("team_points", D2)}


def test_missing_sql_file_fails_with_processor_error_naming_the_file(pipeline: PipelineSpec,
                                                                      warehouse: DuckDBWarehouse) -> None:
    assert pipeline.processors["team_points"].sql is not None
    pipeline.processors["team_points"].sql.unlink()
    result = execute_task(task(pipeline, warehouse, "team_points@2024-01-01"), warehouse, pipeline)
    assert (result.status, result.error_category) == ("failed", "processor_error")
    assert "team_points.sql" in (result.error_message or "")


def test_bad_sql_fails_and_leaves_the_table_as_it_was(pipeline: PipelineSpec, warehouse: DuckDBWarehouse) -> None:
    t = task(pipeline, warehouse, "team_points@2024-01-01")
    execute_task(t, warehouse, pipeline)
    assert pipeline.processors["team_points"].sql is not None
    pipeline.processors["team_points"].sql.write_text("SELECT game_date, team, FROM WHERE (")
    result = execute_task(t, warehouse, pipeline)
    assert (result.status, result.error_category) == ("failed", "processor_error")
    assert "team_points.sql" in (result.error_message or "")
    assert warehouse.query("SELECT COUNT(*) AS n FROM nba_analytics.team_points")[0]["n"] == 4


def test_nulls_in_required_columns_make_the_task_partial(pipeline: PipelineSpec,
                                                         warehouse: DuckDBWarehouse) -> None:
    warehouse.execute("UPDATE nba_raw.team_boxscores SET points = NULL WHERE team = 'BOS'")
    result = execute_task(task(pipeline, warehouse, "team_points@2024-01-01"), warehouse, pipeline)
    assert (result.status, result.error_category) == ("partial", "partial_data")
    assert any("points" in w and "NULL" in w for w in result.warnings)


def test_fewer_box_score_games_than_scheduled_is_partial_with_a_warning(pipeline: PipelineSpec,
                                                                        warehouse: DuckDBWarehouse) -> None:
    warehouse.execute("DELETE FROM nba_raw.team_boxscores WHERE game_id = 'g2'")
    result = execute_task(task(pipeline, warehouse, "team_points@2024-01-01"), warehouse, pipeline)
    assert result.status == "partial" and result.rows == 2
    assert any("no rows for scheduled game g2" in w for w in result.warnings)
    assert any("2 of 4 expected rows" in w for w in result.warnings)


def test_a_game_missing_one_teams_row_is_partial_naming_game_and_team(pipeline: PipelineSpec,
                                                                      warehouse: DuckDBWarehouse) -> None:
    warehouse.execute("DELETE FROM nba_raw.team_boxscores WHERE game_id = 'g2' AND team = 'GSW'")
    result = execute_task(task(pipeline, warehouse, "team_points@2024-01-01"), warehouse, pipeline)
    assert (result.status, result.error_category, result.rows) == ("partial", "partial_data", 3)
    assert any("no rows for team GSW in game g2" in w for w in result.warnings), result.warnings
    assert any("3 of 4 expected rows" in w for w in result.warnings)


def test_zero_rows_on_a_date_with_games_is_empty_output_not_success(pipeline: PipelineSpec,
                                                                    warehouse: DuckDBWarehouse) -> None:
    warehouse.execute(f"DELETE FROM nba_raw.team_boxscores WHERE game_date = '{D2}'")
    t = task(pipeline, warehouse, "team_points@2024-01-02")
    strict = execute_task(t, warehouse, pipeline)
    assert (strict.status, strict.error_category, strict.rows) == ("failed", "empty_output", 0)
    assert "0 rows written on a date with 1 game(s)" in (strict.error_message or "")
    loose = execute_task(t, warehouse, pipeline, strict=False)
    assert (loose.status, loose.error_category) == ("partial", "empty_output")


def checker(spec: PipelineSpec, w: DuckDBWarehouse, in_run: dict[tuple[str, dt.date], str]) -> UpstreamCheck:
    return UpstreamCheck(spec, Calendar.from_warehouse(w, spec.schedule_table), w,
                         lambda keys: {k: in_run[k] for k in keys if k in in_run})


def test_strict_gap_fails_before_writing_and_names_the_missing_partitions(pipeline: PipelineSpec,
                                                                          warehouse: DuckDBWarehouse) -> None:
    t1 = task(pipeline, warehouse, "team_points@2024-01-01")
    assert execute_task(t1, warehouse, pipeline).status == "success"
    downstream = task(pipeline, warehouse, "running_points@2024-01-02")
    # team_points@D1 succeeded in this run; team_points@D2 never ran: D2's window (D1, D2) has a gap.
    result = execute_task(downstream, warehouse, pipeline, check=checker(pipeline, warehouse,
                                                                         {("team_points", D1): "success"}))
    assert (result.status, result.error_category) == ("failed", "dependency_gap")
    assert "team_points@2024-01-02 (never ran)" in (result.error_message or "")
    assert not warehouse.table_exists("nba_precompute.running_points") or warehouse.query(
        "SELECT COUNT(*) AS n FROM nba_precompute.running_points")[0]["n"] == 0


def test_a_succeeded_partition_whose_rows_were_deleted_is_a_gap(pipeline: PipelineSpec,
                                                                warehouse: DuckDBWarehouse) -> None:
    for tid in ("team_points@2024-01-01", "team_points@2024-01-02"):
        execute_task(task(pipeline, warehouse, tid), warehouse, pipeline)
    warehouse.execute(f"DELETE FROM nba_analytics.team_points WHERE game_date = '{D1}'")
    ran = {("team_points", D1): "success", ("team_points", D2): "success"}
    result = execute_task(task(pipeline, warehouse, "running_points@2024-01-02"), warehouse, pipeline,
                          check=checker(pipeline, warehouse, ran))
    assert result.error_category == "dependency_gap"
    assert "team_points@2024-01-01 (0 rows in its table)" in (result.error_message or "")


def test_no_strict_runs_with_a_gap_and_is_partial_with_its_coverage(pipeline: PipelineSpec,
                                                                    warehouse: DuckDBWarehouse) -> None:
    execute_task(task(pipeline, warehouse, "team_points@2024-01-02"), warehouse, pipeline)
    result = execute_task(task(pipeline, warehouse, "running_points@2024-01-02"), warehouse, pipeline,
                          check=checker(pipeline, warehouse, {("team_points", D2): "success",
                                                              ("team_points", D1): "failed"}),
                          strict=False)
    assert (result.status, result.error_category, result.rows) == ("partial", "dependency_gap", 1)
    assert any("team_points: 1 of 2 game dates" in w for w in result.warnings), result.warnings


def test_upstream_done_in_run_history_passes_the_check(pipeline: PipelineSpec, warehouse: DuckDBWarehouse) -> None:
    history = RunHistory(warehouse, pipeline.run_history_table)
    for tid in ("team_points@2024-01-01", "team_points@2024-01-02"):
        t = task(pipeline, warehouse, tid)
        history.write(rows_of(execute_task(t, warehouse, pipeline), t, "earlier-run"))
    result = execute_task(task(pipeline, warehouse, "running_points@2024-01-02"), warehouse, pipeline,
                          check=checker(pipeline, warehouse, {}))
    assert (result.status, result.rows) == ("success", 1), result.error_message


class OneBadDate(DuckDBWarehouse):
    """A real DuckDB warehouse whose writes fail whenever one given date is among them."""

    bad: dt.date = D2
    statements = 0

    def replace_partitions(self, table: TableSchema, dates: Sequence[dt.date], select_sql: str,
                           params: Mapping[str, Any] | None = None, *,
                           labels: Mapping[str, str] | None = None) -> int:
        self.statements += 1
        if self.bad in dates:
            raise WarehouseError(f"division by zero on {self.bad}", category="processor_error")
        return super().replace_partitions(table, dates, select_sql, params, labels=labels)


def test_a_failed_batch_is_bisected_so_one_bad_date_fails_alone(pipeline: PipelineSpec, tmp_path: Path,
                                                                 warehouse: DuckDBWarehouse) -> None:
    warehouse.close()
    bad = OneBadDate(tmp_path / "w.duckdb")
    t = task(pipeline, bad, "team_points@2024-01-01")
    batch = Task(t.id, t.processor, t.phase, t.season, (D1, D2, D4), (), False, 0, 1.0)
    result = bad_result = execute_task(batch, bad, pipeline)
    assert result.status == "failed" and result.error_category == "processor_error"
    assert bad_result.status_by_date == {D1: "success", D2: "failed", D4: "success"}
    assert result.rows_by_date == {D1: 4, D2: 0, D4: 2}
    rows = {r["data_date"]: r["status"] for r in rows_of(result, batch, "r")}
    assert rows == {D1: "success", D2: "failed", D4: "success"}
    assert bad.statements == 5  # the batch, its halves [D1] [D2, D4], then [D2] and [D4]


class QuotaWarehouse(DuckDBWarehouse):
    """A real DuckDB warehouse whose partition writes are refused, as BigQuery does under quota."""

    def replace_partitions(self, table: TableSchema, dates: Sequence[dt.date], select_sql: str,
                           params: Mapping[str, Any] | None = None, *,
                           labels: Mapping[str, str] | None = None) -> int:
        raise QuotaExceeded("Quota exceeded: too many table update operations")


def test_quota_errors_are_raised_for_retry_unless_asked_not_to(pipeline: PipelineSpec, tmp_path: Path,
                                                                warehouse: DuckDBWarehouse) -> None:
    t = task(pipeline, warehouse, "team_points@2024-01-01")
    warehouse.close()
    quota = QuotaWarehouse(tmp_path / "w.duckdb")
    with pytest.raises(TransientWarehouseError):
        execute_task(t, quota, pipeline)
    result = execute_task(t, quota, pipeline, raise_transient=False)
    assert (result.status, result.error_category) == ("failed", "quota")


def test_gaps_are_game_dates_without_a_done_latest_row(pipeline: PipelineSpec, warehouse: DuckDBWarehouse) -> None:
    history = RunHistory(warehouse, "nba_reference.processor_run_history")
    cal = Calendar.from_warehouse(warehouse, "nba_raw.schedule")
    for tid in ("team_points@2024-01-01", "team_points@2024-01-02"):
        t = task(pipeline, warehouse, tid)
        history.write(rows_of(execute_task(t, warehouse, pipeline), t, "r"))
    t = task(pipeline, warehouse, "team_points@2024-01-02")
    failed = TaskResult(t.id, t.processor, t.phase, t.season, t.dates, "failed", attempt=2,
                        finished_at=dt.datetime.now(dt.UTC), error_category="transient")
    history.write(rows_of(failed, t, "r"))
    gaps = history.gaps(cal, ["team_points", "running_points"], D1, D4)
    assert ("team_points", dt.date(2024, 1, 3)) not in gaps  # an off-day is never a gap
    assert set(gaps) == {("team_points", D2), ("team_points", D4), ("running_points", D1),
                         ("running_points", D2), ("running_points", D4)}
