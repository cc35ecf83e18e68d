"""Acceptance on the real NBA data: the plan of three seasons through Phases 3 and 4 is dependency-safe,
its `team_games: 15` windows are exactly each team's last 15 games, and no task falls on an off-day."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from backfill.calendar import Calendar
from backfill.cli import cli
from backfill.spec import Window, load_spec
from backfill.warehouse import open_warehouse

REPO = Path(__file__).resolve().parents[2]
IN_SCOPE = ("regular", "play_in", "playoffs")


def season_rows(schedule: list[dict[str, Any]], day: dt.date) -> list[dict[str, Any]]:
    season = next(r["season"] for r in schedule if r["game_date"] == day)
    return [r for r in schedule if r["season"] == season and r["game_date"] < day]


def last_games_union(schedule: list[dict[str, Any]], day: dt.date, n: int) -> set[dt.date]:
    """Dates on which any team of `day`'s season played one of its last n games before `day`."""
    per_team: dict[str, set[dt.date]] = defaultdict(set)
    for r in season_rows(schedule, day):
        per_team[r["home_team"]].add(r["game_date"])
        per_team[r["away_team"]].add(r["game_date"])
    out: set[dt.date] = set()
    for dates in per_team.values():
        out.update(sorted(dates)[-n:])
    return out


def needed(schedule: list[dict[str, Any]], window: Window, day: dt.date) -> set[dt.date]:
    """Brute force for the windows of the NBA pipeline (none of them crosses seasons)."""
    assert not window.cross_season
    earlier = sorted({r["game_date"] for r in season_rows(schedule, day)})
    current = {day} if window.reads_current else set()
    if window.kind == "same_date":
        return {day}
    if window.kind == "team_games":
        return last_games_union(schedule, day, window.size) | current
    if window.kind == "days":
        return {d for d in earlier if d >= day - dt.timedelta(days=window.size)} | current
    if window.kind == "game_dates":
        return set(earlier[max(0, len(earlier) - window.size):]) | current
    return set(earlier) | current


@pytest.mark.slow
def test_real_data_plan_is_dependency_safe_and_windows_are_exact(real_nba_warehouse: Path, tmp_path: Path) -> None:
    shutil.copyfile(real_nba_warehouse, tmp_path / "w.duckdb")
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    wh = open_warehouse(url)
    schedule = [r for r in wh.query("SELECT game_id, game_date, season, season_type, home_team, away_team "
                                    "FROM nba_raw.schedule") if r["season_type"] in IN_SCOPE]
    wh.close()
    for r in schedule:
        if isinstance(r["game_date"], dt.datetime):
            r["game_date"] = r["game_date"].date()
    start, end = dt.date(2021, 10, 19), dt.date(2024, 6, 30)
    game_dates = {r["game_date"] for r in schedule}
    in_range = {d for d in game_dates if start <= d <= end}
    assert len(in_range) > 600

    result = CliRunner().invoke(cli, ["--warehouse", url, "plan", "--batch", "1",
                                      "--pipeline", str(REPO / "pipelines" / "nba"),
                                      "--start", start.isoformat(), "--end", end.isoformat(), "--json"])
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)

    # Every dependency of every task lies in an earlier wave.
    wave_of: dict[str, int] = {}
    tasks: dict[str, dict[str, Any]] = {}
    for i, wave in enumerate(plan["waves"]):
        for task in wave:
            for dep in task["depends_on"]:
                assert wave_of[dep] < i, f"{task['id']} in wave {i} depends on {dep} in wave {wave_of.get(dep)}"
            wave_of[task["id"]] = i
            tasks[task["id"]] = task

    # No task on a date without games, and every game date of the range is planned for every processor.
    planned: dict[str, set[dt.date]] = defaultdict(set)
    for task in tasks.values():
        for d in task["dates"]:
            day = dt.date.fromisoformat(d)
            assert day in game_dates, f"{task['id']} runs on {d}, a date without games"
            planned[str(task["processor"])].add(day)
    assert len(planned) == 10
    for processor, days in planned.items():
        assert days == in_range, processor

    # team_defense_zone_analysis's `team_games: 15` window is exactly each team's last 15 games (of the
    # season) before its date, and the task waits for exactly the partitions of all its windows.
    spec = load_spec(REPO / "pipelines" / "nba")
    calendar = Calendar.from_rows(schedule)
    zone = [t for t in tasks.values() if t["processor"] == "team_defense_zone_analysis"]
    assert len(zone) == len(in_range)
    upstream = spec.processors["team_defense_zone_analysis"].upstream_processors
    assert Window("team_games", 15) in [d.window for d in upstream]
    for task in zone:
        day = dt.date.fromisoformat(task["dates"][0])
        fifteen = last_games_union(schedule, day, 15)
        assert set(calendar.resolve(Window("team_games", 15), day).dates) == fifteen, task["id"]
        expected = {f"{d.source}@{e.isoformat()}" for d in upstream for e in needed(schedule, d.window, day)}
        assert {f"team_defense_game_summary@{e.isoformat()}" for e in fifteen} <= expected
        assert set(task["depends_on"]) == expected, task["id"]

    # Three seasons with no self-dependent processor: about as many waves as the pipeline has layers.
    assert len(plan["waves"]) == 4
    assert plan["estimates"]["speedup"] > 0.9 * plan["estimates"]["concurrency"]
