"""Acceptance on the real NBA data: the plan of three seasons through Phases 3 and 4 is dependency-safe,
its `team_games: 15` windows are exactly each team's last 15 games, and no task falls on an off-day."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from backfill.cli import cli
from backfill.warehouse import open_warehouse

REPO = Path(__file__).resolve().parents[2]
IN_SCOPE = ("regular", "play_in", "playoffs")


def last_games_union(schedule: list[dict[str, object]], day: dt.date, n: int) -> set[dt.date]:
    """Dates on which any team of `day`'s season played one of its last n games before `day`."""
    season = next(r["season"] for r in schedule if r["game_date"] == day)
    per_team: dict[str, set[dt.date]] = defaultdict(set)
    for r in schedule:
        if r["season"] == season and r["game_date"] < day:  # type: ignore[operator]
            per_team[str(r["home_team"])].add(r["game_date"])  # type: ignore[arg-type]
            per_team[str(r["away_team"])].add(r["game_date"])  # type: ignore[arg-type]
    out: set[dt.date] = set()
    for dates in per_team.values():
        out.update(sorted(dates)[-n:])
    return out


@pytest.mark.slow
def test_real_data_plan_is_dependency_safe_and_windows_are_exact(nba_data_dir: Path, tmp_path: Path) -> None:
    importer = pytest.importorskip("pipelines.nba.importer")
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    wh = open_warehouse(url)
    importer.import_nba(wh, nba_data_dir)
    schedule = [r for r in wh.query("SELECT game_date, season, season_type, home_team, away_team "
                                    "FROM nba_raw.schedule") if r["season_type"] in IN_SCOPE]
    wh.close()
    for r in schedule:
        if isinstance(r["game_date"], dt.datetime):
            r["game_date"] = r["game_date"].date()
    start, end = dt.date(2021, 10, 19), dt.date(2024, 6, 30)
    game_dates = {r["game_date"] for r in schedule}
    in_range = {d for d in game_dates if start <= d <= end}
    assert len(in_range) > 600

    result = CliRunner().invoke(cli, ["--warehouse", url, "plan", "--pipeline", str(REPO / "pipelines" / "nba"),
                                      "--start", start.isoformat(), "--end", end.isoformat(), "--json"])
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)

    # Every dependency of every task lies in an earlier wave.
    wave_of: dict[str, int] = {}
    tasks: dict[str, dict[str, object]] = {}
    for i, wave in enumerate(plan["waves"]):
        for task in wave:
            for dep in task["depends_on"]:
                assert wave_of[dep] < i, f"{task['id']} in wave {i} depends on {dep} in wave {wave_of.get(dep)}"
            wave_of[task["id"]] = i
            tasks[task["id"]] = task

    # No task on a date without games, and every game date of the range is planned for every processor.
    planned: dict[str, set[dt.date]] = defaultdict(set)
    for task in tasks.values():
        for d in task["dates"]:  # type: ignore[attr-defined]
            day = dt.date.fromisoformat(d)
            assert day in game_dates, f"{task['id']} runs on {d}, a date without games"
            planned[str(task["processor"])].add(day)
    assert len(planned) == 10
    for processor, days in planned.items():
        assert days == in_range, processor

    # team_defense_zone_analysis reads exactly each team's last 15 games (of the season) before its date.
    zone = [t for t in tasks.values() if t["processor"] == "team_defense_zone_analysis"]
    assert len(zone) == len(in_range)
    for task in zone:
        day = dt.date.fromisoformat(task["dates"][0])  # type: ignore[index]
        expected = {f"team_defense_game_summary@{d.isoformat()}" for d in last_games_union(schedule, day, 15)}
        assert set(task["depends_on"]) == expected, task["id"]  # type: ignore[arg-type]

    # Three seasons with no self-dependent processor: about as many waves as the pipeline has layers.
    assert len(plan["waves"]) == 4
    assert plan["estimates"]["speedup"] > 0.9 * plan["estimates"]["concurrency"]
