"""`backfill gaps` end to end on a real DuckDB file holding the sample league and real run history."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from backfill.calendar import Calendar
from backfill.cli import cli
from backfill.executor import execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.runhistory import RunHistory
from backfill.spec import load_spec
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.support.history import rows_of

REPO = Path(__file__).resolve().parents[2]
PIPELINE = str(REPO / "pipelines" / "nba")
WEEK = (dt.date(2023, 11, 1), dt.date(2023, 11, 7))
OFFENSE, DEFENSE, PLAYER = "team_offense_game_summary", "team_defense_game_summary", "player_game_summary"


@pytest.fixture(scope="module")
def league(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """2023-24 sample league; offense and defense run over the test week, then defense's history is dented:
    its second game date's latest run failed, its third game date has no history row at all."""
    from pipelines.nba.sample import load_sample

    path = tmp_path_factory.mktemp("gaps") / "w.duckdb"
    spec = load_spec(PIPELINE)
    with DuckDBWarehouse(path) as w:
        load_sample(w, seasons=("2023-24",))
        calendar = Calendar.from_warehouse(w, spec.schedule_table)
        history = RunHistory(w, spec.run_history_table)
        history.ensure()
        plan = build_plan(spec, calendar, PlanRequest(ranges=(WEEK,), processors=frozenset({OFFENSE, DEFENSE})))
        game_dates = calendar.game_dates_between(*WEEK)
        failed_day, missing_day, partial_day = game_dates[1], game_dates[2], game_dates[3]
        rows = []
        for task in plan.tasks():
            if task.processor == DEFENSE and task.dates == (missing_day,):
                continue
            result = execute_task(task, w, spec, run_id="run-a")
            assert result.ok, result
            rows += rows_of(result, task, "run-a")
            if task.processor == DEFENSE and task.dates == (failed_day,):
                later = result.finished_at + dt.timedelta(minutes=5)  # type: ignore[operator]
                rows += [{**r, "run_id": "run-b", "status": "failed", "outcome": "failed", "processed_at": later,
                          "error_category": "processor_error", "error_message": "boom"}
                         for r in rows_of(result, task, "run-b")]
            if task.processor == OFFENSE and task.dates == (partial_day,):
                later = result.finished_at + dt.timedelta(minutes=5)  # type: ignore[operator]
                rows += [{**r, "run_id": "run-b", "status": "partial", "outcome": "partial", "processed_at": later,
                          "error_category": "partial_data", "error_message": "no rows for team BOS in game g1"}
                         for r in rows_of(result, task, "run-b")]
        assert history.write(rows) == len(rows)
        all_star = [d for d in (dt.date(2024, 2, 10) + dt.timedelta(days=i) for i in range(16))
                    if not calendar.is_game_date(d)]
        break_dates = calendar.game_dates_between(dt.date(2024, 2, 10), dt.date(2024, 2, 25))
        off_days = [d for d in (WEEK[0] + dt.timedelta(days=i) for i in range(7)) if not calendar.is_game_date(d)]
    return {"url": f"duckdb:///{path}", "game_dates": game_dates, "failed": failed_day, "missing": missing_day,
            "partial": partial_day,
            "all_star_off_days": all_star, "break_game_dates": break_dates, "week_off_days": off_days}


def gaps(league: dict[str, object], *args: str) -> Result:
    return CliRunner().invoke(cli, ["--warehouse", str(league["url"]), "gaps", "--pipeline", PIPELINE, *args])


def week(*extra: str) -> list[str]:
    return ["--start", WEEK[0].isoformat(), "--end", WEEK[1].isoformat(), *extra]


def test_no_gaps_exits_0(league: dict[str, object]) -> None:
    other = [d for d in league["game_dates"] if d != league["partial"]]  # type: ignore[attr-defined]
    result = gaps(league, "--range", f"{other[0]}:{other[0]}", "--processors", OFFENSE, "--json")
    assert result.exit_code == 0, (result.output, result.stderr)
    doc = json.loads(result.stdout)
    assert doc["gaps"] == [] and doc["counts"]["gaps"] == 0
    assert doc["counts"]["by_processor"] == {OFFENSE: 0}
    assert result.stderr == ""


def test_a_partial_latest_run_is_a_gap_with_its_reason(league: dict[str, object]) -> None:
    """Partial rows are written but short: `gaps` lists them, and `enqueue` runs them again."""
    result = gaps(league, *week("--processors", OFFENSE, "--json"))
    assert result.exit_code == 1, (result.output, result.stderr)
    doc = json.loads(result.stdout)
    assert doc["gaps"] == [{"processor": OFFENSE, "date": league["partial"].isoformat(),  # type: ignore[attr-defined]
                            "season": "2023-24", "last_status": "partial",
                            "reason": "partial: partial_data: no rows for team BOS in game g1", "emptied": False}]


def test_gaps_json_shape_and_exit_1(league: dict[str, object]) -> None:
    result = gaps(league, *week("--processors", f"{OFFENSE},{DEFENSE}", "--json"))
    assert result.exit_code == 1, (result.output, result.stderr)
    doc = json.loads(result.stdout)
    assert set(doc) == {"gaps", "counts", "upstream", "refill"} and doc["upstream"] == doc["refill"] == []
    assert doc["gaps"][1:] == [
        {"processor": DEFENSE, "date": league["failed"].isoformat(), "season": "2023-24",  # type: ignore[attr-defined]
         "last_status": "failed", "reason": "failed: processor_error: boom", "emptied": False},
        {"processor": DEFENSE, "date": league["missing"].isoformat(), "season": "2023-24",  # type: ignore[attr-defined]
         "last_status": None, "reason": "never ran", "emptied": False},
    ]
    n_dates = len(league["game_dates"])  # type: ignore[arg-type]
    assert doc["counts"] == {
        "gaps": 3, "game_dates": n_dates, "partitions_checked": 2 * n_dates, "adopted": 0,
        "adopted_failing_checks": 0, "days_without_games": len(league["week_off_days"]),  # type: ignore[arg-type]
        "by_processor": {OFFENSE: 1, DEFENSE: 2}, "by_season": {"2023-24": 3},
        "by_last_status": {"failed": 1, "never_run": 1, "partial": 1}, "emptied": 0,
    }
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 3 gap(s) in 2 processor(s)"), result.stderr
    assert f"--processors {OFFENSE},{DEFENSE}" in lines[0]


def test_off_days_are_never_gaps(league: dict[str, object]) -> None:
    """A processor that never ran has a gap on every game date, and on no day without games."""
    assert league["all_star_off_days"], "the sample league's All-Star break should fall in this range"
    result = gaps(league, "--start", "2024-02-10", "--end", "2024-02-25", "--processors", PLAYER, "--json")
    assert result.exit_code == 1, (result.output, result.stderr)
    doc = json.loads(result.stdout)
    dates = [g["date"] for g in doc["gaps"]]
    assert dates == [d.isoformat() for d in league["break_game_dates"]]  # type: ignore[attr-defined]
    assert not set(dates) & {d.isoformat() for d in league["all_star_off_days"]}  # type: ignore[attr-defined]
    assert doc["counts"]["days_without_games"] == len(league["all_star_off_days"])  # type: ignore[arg-type]
    assert all(g["last_status"] is None for g in doc["gaps"])


def test_phases_select_processors_and_ranges_combine(league: dict[str, object]) -> None:
    result = gaps(league, "--range", "2023-11-01:2023-11-03", "--range", "2023-11-02:2023-11-07",
                  "--phases", "4", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    phase4 = [n for n, p in load_spec(PIPELINE).processors.items() if p.phase == 4]
    assert set(doc["counts"]["by_processor"]) == set(phase4)
    n_dates = len(league["game_dates"])  # type: ignore[arg-type]
    assert doc["counts"]["gaps"] == len(phase4) * n_dates  # overlapping ranges count each date once
    assert len({(g["processor"], g["date"]) for g in doc["gaps"]}) == len(doc["gaps"])


def test_human_output_has_a_table_per_processor(league: dict[str, object]) -> None:
    result = gaps(league, *week("--processors", f"{OFFENSE},{DEFENSE}"))
    assert result.exit_code == 1
    assert f"{DEFENSE}: 2 gap(s)" in result.stdout
    assert f"{OFFENSE}: 1 gap(s)" in result.stdout
    assert "boom" in result.stdout  # the first gap's reason
    assert league["failed"].isoformat() in result.stdout  # type: ignore[attr-defined]
    assert "failed 1" in result.stdout and "never_run 1" in result.stdout


def test_season_filter(league: dict[str, object]) -> None:
    result = gaps(league, *week("--processors", DEFENSE, "--seasons", "2023-24", "--json"))
    assert result.exit_code == 1
    assert json.loads(result.stdout)["counts"]["gaps"] == 2


@pytest.mark.parametrize("args, needle", [
    (("--start", "2023-11-07", "--end", "2023-11-01"), "ends before it starts"),
    (("--start", "2023-11-01"), "--start and --end go together"),
    (("--start", "2023-13-01", "--end", "2023-11-07"), "is not a date"),
    (("--start", "2023-11-01", "--end", "2023-11-07", "--processors", "nope"), "unknown processor(s) nope"),
    (("--start", "2023-11-01", "--end", "2023-11-07", "--phases", "x"), "--phases 'x' must be numbers"),
    (("--start", "2023-11-01", "--end", "2023-11-07", "--seasons", "1999-00"), "unknown season(s) 1999-00"),
])
def test_bad_input_exits_2_with_one_line(league: dict[str, object], args: tuple[str, ...], needle: str) -> None:
    result = gaps(league, *args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert result.stdout == ""


def test_empty_warehouse_exits_2_and_a_missing_one_3_creating_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{empty}", "gaps", "--pipeline", PIPELINE, *week()])
    assert result.exit_code == 2, (result.output, result.stderr)
    assert "no schedule table" in result.stderr
    missing = tmp_path / "not-here" / "wh.duckdb"
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{missing}", "gaps", "--pipeline", PIPELINE, *week()])
    assert result.exit_code == 3 and f"no warehouse at {missing}" in result.stderr
    assert not missing.parent.exists()
