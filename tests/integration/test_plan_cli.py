"""`backfill plan` end to end on a real DuckDB file: exit codes, one-line errors, the JSON shape."""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result

from backfill.cli import cli
from backfill.warehouse import open_warehouse
from pipelines.nba.raw import SCHEDULE

REPO = Path(__file__).resolve().parents[2]
PIPELINE = str(REPO / "pipelines" / "nba")
TEAMS = ("ATL", "BOS", "CHI", "DAL", "DEN", "GSW")


def schedule_rows() -> list[dict[str, Any]]:
    """Two short seasons with off-days and a break; enough for every window to have something."""
    rng = random.Random(3)
    rows: list[dict[str, Any]] = []
    for year, label in ((2022, "2022-23"), (2023, "2023-24")):
        day = dt.date(year, 10, 24)
        for i in range(30):
            day += dt.timedelta(days=8 if i == 15 else rng.choice((1, 1, 2)))
            teams = list(TEAMS)
            rng.shuffle(teams)
            for g in range(rng.randint(1, 3)):
                rows.append({"game_id": f"{label}-{len(rows)}", "game_date": day, "season": label,
                             "season_type": "playoffs" if i >= 27 else "regular",
                             "home_team": teams[2 * g], "away_team": teams[2 * g + 1], "source": "test"})
    return rows


@pytest.fixture(scope="module")
def warehouse_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("plan_cli") / "w.duckdb"
    wh = open_warehouse(f"duckdb:///{path}")
    wh.create_table(SCHEDULE)
    wh.insert_rows(SCHEDULE.name, schedule_rows())
    wh.close()
    return f"duckdb:///{path}"


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--warehouse", url, "plan", "--pipeline", PIPELINE, *args])


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


# -- bad input: exit 2, one line ------------------------------------------------------------

def test_end_before_start_exits_2_with_one_line(warehouse_url: str) -> None:
    line = one_error_line(run(warehouse_url, "--start", "2023-11-07", "--end", "2023-11-01"))
    assert "before" in line and "2023-11-07" in line


@pytest.mark.parametrize("args", [("--start", "2023-13-01", "--end", "2023-12-07"),
                                  ("--start", "yesterday", "--end", "2023-12-07"),
                                  ("--range", "2023-11-01..2023-11-07"),
                                  ("--range", "2023-11-01:soon")])
def test_unparsable_dates_exit_2_with_one_line(warehouse_url: str, args: tuple[str, ...]) -> None:
    line = one_error_line(run(warehouse_url, *args))
    assert "date" in line or "--range" in line


def test_unknown_processor_exits_2_with_one_line(warehouse_url: str) -> None:
    line = one_error_line(run(warehouse_url, "--start", "2023-11-01", "--end", "2023-11-07",
                              "--processors", "player_game_sumary"))
    assert "player_game_sumary" in line


def test_unknown_season_exits_2_with_one_line(warehouse_url: str) -> None:
    line = one_error_line(run(warehouse_url, "--start", "2023-11-01", "--end", "2023-11-07",
                              "--seasons", "1999-00"))
    assert "1999-00" in line and "2023-24" in line


def test_missing_dates_exit_2_with_one_line(warehouse_url: str) -> None:
    one_error_line(run(warehouse_url))
    one_error_line(run(warehouse_url, "--start", "2023-11-01"))


def test_bad_pipeline_exits_2_with_one_line(warehouse_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "pipeline.yaml"
    bad.write_text("processors:\n  a:\n    phase: 3\n    target: x; DROP\n    sql: a.sql\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--warehouse", warehouse_url, "plan", "--pipeline", str(tmp_path),
                                      "--start", "2023-11-01", "--end", "2023-11-07"])
    line = one_error_line(result)
    assert f"{bad}:2" in line and "processor a" in line


def test_empty_warehouse_exits_2_and_says_to_load_data(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()  # a missing file is exit 3 (`no warehouse at`), not created
    line = one_error_line(run(f"duckdb:///{empty}", "--start", "2023-11-01", "--end", "2023-11-07"))
    assert "backfill data sample" in line


def test_subprocess_error_is_one_line_and_exit_2(warehouse_url: str) -> None:
    proc = subprocess.run([sys.executable, "-c", "from backfill.cli import main; main()", "--warehouse",
                           warehouse_url, "plan", "--pipeline", PIPELINE, "--start", "2023-11-07", "--end",
                           "2023-11-01"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""


# -- good input -----------------------------------------------------------------------------

def test_json_shape_is_stable(warehouse_url: str) -> None:
    result = run(warehouse_url, "--start", "2022-10-01", "--end", "2024-06-30", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"waves", "estimates", "warnings"} <= set(data)
    assert isinstance(data["warnings"], list) and all(isinstance(w, str) for w in data["warnings"])
    assert {"tasks", "waves", "concurrency", "total_work_seconds", "critical_path_seconds", "wall_seconds",
            "sequential_seconds", "speedup"} <= set(data["estimates"])
    assert data["estimates"]["waves"] == len(data["waves"])
    seen: dict[str, int] = {}
    for i, wave in enumerate(data["waves"]):
        assert isinstance(wave, list) and wave
        for task in wave:
            assert {"id", "processor", "dates", "depends_on", "bootstrap"} <= set(task)
            assert isinstance(task["bootstrap"], bool)
            assert task["id"] == f"{task['processor']}@{task['dates'][0]}"
            for d in task["dates"]:
                dt.date.fromisoformat(d)
            for dep in task["depends_on"]:
                assert seen[dep] < i
            seen[task["id"]] = i
    assert data["estimates"]["tasks"] == len(seen)
    game_dates = {r["game_date"].isoformat() for r in schedule_rows()}
    assert {d for w in data["waves"] for t in w for d in t["dates"]} == game_dates


def test_json_is_the_same_twice(warehouse_url: str) -> None:
    args = ("--range", "2022-11-01:2022-11-07", "--range", "2023-11-01:2023-11-07", "--json")
    first, second = run(warehouse_url, *args), run(warehouse_url, *args)
    assert first.exit_code == 0 and first.stdout == second.stdout
    seasons = {t["season"] for w in json.loads(first.stdout)["waves"] for t in w}
    assert seasons == {"2022-23", "2023-24"}


def test_selection_flags_narrow_the_json_plan(warehouse_url: str) -> None:
    result = run(warehouse_url, "--start", "2022-10-01", "--end", "2024-06-30", "--phases", "4",
                 "--seasons", "2023-24", "--season-types", "regular", "--order", "chronological",
                 "--concurrency", "4", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    tasks = [t for w in data["waves"] for t in w]
    assert tasks and {t["phase"] for t in tasks} == {4} and {t["season"] for t in tasks} == {"2023-24"}
    assert data["estimates"]["concurrency"] == 4
    assert any("neither planned nor recorded" in w for w in data["warnings"])


def test_human_output_mentions_waves_estimates_and_warnings(warehouse_url: str) -> None:
    result = run(warehouse_url, "--start", "2023-10-01", "--end", "2024-06-30")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "waves" in out.lower() and "Estimates" in out
    assert "sequential" in out and "critical path" in out
    assert "bootstrap" in out and "no games" in out


def test_plan_on_the_sample_league(tmp_path: Path) -> None:
    sample = pytest.importorskip("pipelines.nba.sample")
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    wh = open_warehouse(url)
    sample.load_sample(wh, seasons=("2023-24",), seed=7)
    wh.close()
    result = run(url, "--start", "2023-11-01", "--end", "2023-11-07", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["waves"] and len(data["waves"]) <= 4
    assert {t["processor"] for w in data["waves"] for t in w} >= {"player_game_summary", "ml_feature_store"}


def test_plan_counts_the_execution_windows_its_estimate_needs(warehouse_url: str) -> None:
    from backfill.windows import ExecutionWindow

    args = ("--start", "2022-10-01", "--end", "2024-06-30", "--batch", "1", "--concurrency", "1")
    wall = json.loads(run(warehouse_url, *args, "--json").stdout)["estimates"]["wall_seconds"]
    # Windows of 5 s a day (seconds are allowed) make the sample's estimate span several of them.
    spec = ("03:00:00-03:00:05", "America/New_York", "mon-fri")
    assert wall > 3 * 5, wall
    before = dt.datetime.now(dt.UTC)
    result = run(warehouse_url, *args, "--window", spec[0], "--tz", spec[1], "--days", spec[2], "--json")
    assert result.exit_code == 0, result.stderr
    windows = json.loads(result.stdout)["windows"]
    expected = ExecutionWindow.parse(*spec).finish(dt.timedelta(seconds=wall), before)[0]
    assert windows["windows"] == expected >= 4
    assert windows["window"] == {"start": "03:00:00", "end": "03:00:05", "tz": "America/New_York",
                                 "days": ["mon", "tue", "wed", "thu", "fri"]}
    human = " ".join(run(warehouse_url, *args, "--window", spec[0], "--tz", spec[1], "--days", spec[2]).stdout.split())
    assert f"needs {expected} windows of 03:00:00-03:00:05 America/New_York mon,tue,wed,thu,fri, ending about" in human
    assert "--window '3am-7am' is not HH:MM-HH:MM" in one_error_line(run(warehouse_url, *args, "--window", "3am-7am"))
    assert "--tz and --days describe a --window" in one_error_line(run(warehouse_url, *args, "--tz", "UTC"))
