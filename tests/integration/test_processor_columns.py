"""Each processor's columns mean what their names say, on a fully run real month.

Real 2022-23 data: Phase 3 from opening night to the end of April 2023, then Phase 4 date by
date over April 2023, which holds the last regular-season week and the first playoff rounds.
Every expected value is computed here by an independent SQL straight from the raw tables
(`nba_raw.player_boxscores`, `nba_raw.team_boxscores`, `nba_raw.schedule`), never by reusing a
processor's SQL, so a window that is too short, too long or on the wrong team shows up as a
mismatch. Each check also proves it is not vacuous (e.g. a playoff player whose season began
more than 180 days earlier, a traded player, an overtime game).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest

from backfill.calendar import Calendar
from backfill.executor import TaskResult, execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.spec import load_spec
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import require_nba_data

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "pipelines" / "nba")
SEASON = "2022-23"
OPENING, MONTH = dt.date(2022, 10, 18), (dt.date(2023, 4, 1), dt.date(2023, 4, 30))
FIRST_PLAYOFF_DATE = dt.date(2023, 4, 15)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def april(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[TaskResult]]:
    """The warehouse after the run, and every task's result."""
    from pipelines.nba.importer import import_nba

    data = require_nba_data(f"player_logs/player_logs_{SEASON}.csv", "playoff_player_logs/P23.csv")
    subset = tmp_path_factory.mktemp("real") / "data"
    for folder, name in (("player_logs", f"player_logs_{SEASON}.csv"), ("playoff_player_logs", "P23.csv")):
        (subset / folder).mkdir(parents=True)
        (subset / folder / name).symlink_to(data / folder / name)
    path = subset.parent / "april.duckdb"
    results: list[TaskResult] = []
    with DuckDBWarehouse(path) as w:
        import_nba(w, subset)
        cal = Calendar.from_warehouse(w, "nba_raw.schedule")
        # Phase 3 in batches of a month (set-based SQL, same rows as date by date, much faster);
        # Phase 4 date by date, as a default run does.
        batches = {name: 30 for name, p in SPEC.processors.items() if p.phase == 3}
        phase3 = build_plan(SPEC, cal, PlanRequest(ranges=((OPENING, MONTH[1]),), phases=frozenset({3}),
                                                   batch_sizes=batches))
        phase4 = build_plan(SPEC, cal, PlanRequest(ranges=(MONTH,), phases=frozenset({4})))
        for task in [*phase3.tasks(), *phase4.tasks()]:
            results.append(execute_task(task, w, SPEC))
    return path, results


def query(path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def close(got: float, exact: float, places: int = 3) -> bool:
    """`got` is `exact` rounded to `places` decimals (either way at a tie: SQL rounds half away from zero)."""
    return abs(got - exact) <= 0.5 * 10 ** -places + 1e-9


def test_every_task_of_the_month_succeeds_with_rows_on_each_of_its_game_dates(
        april: tuple[Path, list[TaskResult]]) -> None:
    path, results = april
    assert results and all(r.status == "success" for r in results), [
        (r.task_id, r.status, r.error_message, r.warnings[:2]) for r in results if r.status != "success"]
    game_dates = {d for (d,) in query(path, "SELECT DISTINCT game_date FROM nba_raw.schedule "
                                            "WHERE game_date BETWEEN ? AND ?", list(MONTH))}
    assert FIRST_PLAYOFF_DATE in game_dates and len(game_dates) > 20
    empty = [(r.task_id, d) for r in results for d in r.dates
             if d in game_dates and r.rows_by_date.get(d, 0) == 0]
    assert empty == []


SEASON_TO_DATE = """
-- Every raw box-score row of the player's season strictly before the date, any team.
SELECT c.game_date, c.player_id, c.games_played,
       c.season_points_avg, c.season_minutes_avg, c.season_rebounds_avg, c.season_assists_avg,
       COUNT(*) AS n, AVG(b.points) AS points, AVG(b.minutes) AS minutes, AVG(b.reb) AS rebounds,
       AVG(b.ast) AS assists, MIN(b.game_date) AS first_game
FROM nba_precompute.player_daily_cache AS c
JOIN nba_raw.player_boxscores AS b
  ON b.player_id = c.player_id AND b.season = ? AND b.game_date < c.game_date
WHERE c.game_date >= ?
GROUP BY ALL
"""


def test_season_points_avg_on_playoff_dates_averages_every_game_of_the_season_so_far(
        april: tuple[Path, list[TaskResult]]) -> None:
    path, _ = april
    rows = query(path, SEASON_TO_DATE, [SEASON, FIRST_PLAYOFF_DATE])
    cached = query(path, "SELECT COUNT(*) FROM nba_precompute.player_daily_cache WHERE game_date >= ?",
                   [FIRST_PLAYOFF_DATE])[0][0]
    assert len(rows) == cached > 500  # every playoff row of the cache has its raw history
    # Not vacuous: most players' seasons began more than 180 days before the playoff dates, the
    # window the cache used to stop at.
    assert sum((day - first).days > 180 for day, *_, first in rows) > len(rows) / 2
    wrong = [(day, pid, games, got, round(points, 3), n)
             for day, pid, games, got, _m, _r, _a, n, points, *_ in rows
             if games != n or not close(got, points)]
    assert wrong == []
    for day, pid, _g, _p, minutes_avg, rebounds_avg, assists_avg, _n, _pts, minutes, rebounds, assists, _f in rows:
        assert abs(minutes_avg - minutes) < 6e-3, (day, pid)  # minutes are averaged in hundredths
        assert close(rebounds_avg, rebounds), (day, pid)
        assert close(assists_avg, assists), (day, pid)


def test_daily_cache_l5_and_l10_are_the_players_last_5_and_10_games(april: tuple[Path, list[TaskResult]]) -> None:
    path, _ = april
    rows = query(path, """
        WITH games AS (
          SELECT c.game_date, c.player_id, c.l5_points_avg, c.l10_points_avg, b.points,
                 ROW_NUMBER() OVER (PARTITION BY c.game_date, c.player_id ORDER BY b.game_date DESC) AS back
          FROM nba_precompute.player_daily_cache AS c
          JOIN nba_raw.player_boxscores AS b
            ON b.player_id = c.player_id AND b.season = c.season AND b.game_date < c.game_date)
        SELECT game_date, player_id, ANY_VALUE(l5_points_avg), AVG(points) FILTER (WHERE back <= 5),
               ANY_VALUE(l10_points_avg), AVG(points) FILTER (WHERE back <= 10), COUNT(*)
        FROM games GROUP BY ALL""")
    assert len(rows) > 1000 and any(n > 10 for *_, n in rows)
    wrong = [r for r in rows if not (close(r[2], r[3]) and close(r[4], r[5]))]
    assert wrong == []


def test_a_traded_player_is_listed_only_with_his_new_team(april: tuple[Path, list[TaskResult]]) -> None:
    """The 2023 trade deadline (Feb 9) moved dozens of players; April must list each with one team."""
    path, _ = april
    for table in ("nba_analytics.upcoming_player_game_context", "nba_precompute.player_shot_zone_analysis"):
        twice = query(path, f"SELECT game_date, player_id FROM {table} WHERE game_date BETWEEN ? AND ? "
                            "GROUP BY ALL HAVING COUNT(*) > 1", list(MONTH))
        assert twice == [], table
    rows = query(path, """
        WITH latest AS (
          SELECT c.game_date, c.player_id, c.team, c.days_since_last_played,
                 ARG_MAX(b.team, b.game_date) AS last_team, c.game_date - MAX(b.game_date) AS days_since,
                 COUNT(DISTINCT b.team) AS teams
          FROM nba_analytics.upcoming_player_game_context AS c
          JOIN nba_raw.player_boxscores AS b
            ON b.player_id = c.player_id AND b.season = c.season AND b.game_date < c.game_date
          WHERE c.game_date BETWEEN ? AND ?
          GROUP BY c.game_date, c.player_id, c.team, c.days_since_last_played)
        SELECT team, last_team, days_since_last_played, days_since, teams FROM latest""", list(MONTH))
    assert sum(teams > 1 for *_, teams in rows) > 20  # traded players are in the check
    assert [r for r in rows if r[0] != r[1] or r[2] != r[3]] == []


def test_upcoming_player_l5_l10_are_among_his_teams_last_10_games(april: tuple[Path, list[TaskResult]]) -> None:
    path, _ = april
    rows = query(path, """
        WITH team_games AS (
          SELECT game_date, season, home_team AS team FROM nba_raw.schedule
          UNION ALL SELECT game_date, season, away_team FROM nba_raw.schedule),
        last10 AS (
          SELECT c.game_date, c.team, c.player_id, g.game_date AS past
          FROM nba_analytics.upcoming_player_game_context AS c
          JOIN team_games AS g ON g.team = c.team AND g.season = c.season AND g.game_date < c.game_date
          WHERE c.game_date BETWEEN ? AND ?
          QUALIFY ROW_NUMBER() OVER (PARTITION BY c.game_date, c.team, c.player_id ORDER BY g.game_date DESC) <= 10),
        played AS (
          SELECT l.game_date, l.team, l.player_id, b.points,
                 ROW_NUMBER() OVER (PARTITION BY l.game_date, l.team, l.player_id ORDER BY b.game_date DESC) AS back
          FROM last10 AS l
          JOIN nba_raw.player_boxscores AS b ON b.player_id = l.player_id AND b.team = l.team AND b.game_date = l.past)
        SELECT p.game_date, p.team, p.player_id, ANY_VALUE(c.l5_points), AVG(p.points) FILTER (WHERE back <= 5),
               ANY_VALUE(c.l10_points), AVG(p.points), ANY_VALUE(c.games_in_window), COUNT(*)
        FROM played AS p
        JOIN nba_analytics.upcoming_player_game_context AS c USING (game_date, team, player_id)
        GROUP BY ALL""", list(MONTH))
    assert len(rows) > 1000 and any(n == 10 for *_, n in rows) and any(n < 10 for *_, n in rows)
    wrong = [r for r in rows
             if not (close(r[3], r[4]) and close(r[5], r[6]) and r[7] == r[8])]
    assert wrong == []


def test_games_last_7_and_14_days_count_the_teams_games_in_those_calendar_days(
        april: tuple[Path, list[TaskResult]]) -> None:
    path, _ = april
    rows = query(path, """
        WITH team_games AS (
          SELECT game_date, season, home_team AS team FROM nba_raw.schedule
          UNION ALL SELECT game_date, season, away_team FROM nba_raw.schedule)
        SELECT c.game_date, c.team, c.games_last_7_days, c.games_last_14_days,
               COUNT(g.game_date) FILTER (WHERE g.game_date >= c.game_date - 7),
               COUNT(g.game_date), c.game_date - MAX(g.game_date), c.days_rest
        FROM nba_analytics.upcoming_team_game_context AS c
        LEFT JOIN team_games AS g
          ON g.team = c.team AND g.season = c.season AND g.game_date < c.game_date AND g.game_date >= c.game_date - 14
        WHERE c.game_date BETWEEN ? AND ?
        GROUP BY c.game_date, c.team, c.games_last_7_days, c.games_last_14_days, c.days_rest""", list(MONTH))
    assert len(rows) > 200 and {r[2] for r in rows} >= {2, 3, 4}
    assert [r for r in rows if (r[2], r[3], r[7]) != (r[4], r[5], r[6])] == []


def test_team_defense_allowed_columns_are_the_opponents_offense(april: tuple[Path, list[TaskResult]]) -> None:
    path, _ = april
    rows = query(path, """
        SELECT d.game_id, d.team, d.points_allowed, o.points, d.opp_fga, o.fga, d.fg_pct_allowed,
               ROUND(o.fgm / o.fga, 4), d.dreb, own.dreb, d.steals, own.stl
        FROM nba_analytics.team_defense_game_summary AS d
        JOIN nba_raw.team_boxscores AS o ON o.game_id = d.game_id AND o.team = d.opponent
        JOIN nba_raw.team_boxscores AS own ON own.game_id = d.game_id AND own.team = d.team
        WHERE d.game_date BETWEEN ? AND ?""", list(MONTH))
    assert len(rows) > 200
    assert [r for r in rows if r[2::2] != r[3::2]] == []
    # Not vacuous: a team's own points differ from what it allowed in every game (no ties in the NBA).
    own = query(path, "SELECT COUNT(*) FROM nba_analytics.team_defense_game_summary AS d "
                      "JOIN nba_raw.team_boxscores AS t ON t.game_id = d.game_id AND t.team = d.team "
                      "WHERE t.points = d.points_allowed")
    assert own == [(0,)]


def test_team_defense_zone_averages_the_teams_last_15_games(april: tuple[Path, list[TaskResult]]) -> None:
    path, _ = april
    rows = query(path, """
        WITH last15 AS (
          SELECT z.game_date, z.team, z.points_allowed_avg, z.games_in_window, o.points
          FROM nba_precompute.team_defense_zone_analysis AS z
          JOIN nba_raw.team_boxscores AS t ON t.team = z.team AND t.season = z.season AND t.game_date < z.game_date
          JOIN nba_raw.team_boxscores AS o ON o.game_id = t.game_id AND o.team = t.opponent
          QUALIFY ROW_NUMBER() OVER (PARTITION BY z.game_date, z.team ORDER BY t.game_date DESC) <= 15)
        SELECT game_date, team, ANY_VALUE(points_allowed_avg), AVG(points), ANY_VALUE(games_in_window), COUNT(*)
        FROM last15 GROUP BY ALL""")
    assert len(rows) > 200 and all(n == 15 for *_, n in rows)
    assert [r for r in rows if not (close(r[2], r[3]) and r[4] == r[5])] == []


def test_pace_is_possessions_per_48_minutes_also_in_overtime(april: tuple[Path, list[TaskResult]]) -> None:
    path, _ = april
    rows = query(path, """
        WITH length AS (  -- 240 player-minutes a team in regulation, 25 more per overtime
          SELECT game_id, MAX(m) AS team_minutes FROM (
            SELECT game_id, team, SUM(minutes) AS m FROM nba_raw.player_boxscores GROUP BY ALL) GROUP BY ALL),
        poss AS (
          SELECT game_id, team, fga - oreb + tov + 0.44 * fta AS p FROM nba_raw.team_boxscores)
        SELECT o.game_id, o.team, o.pace, AVG(p.p) * 240 / ANY_VALUE(l.team_minutes), ANY_VALUE(l.team_minutes)
        FROM nba_analytics.team_offense_game_summary AS o
        JOIN poss AS p ON p.game_id = o.game_id
        JOIN length AS l ON l.game_id = o.game_id
        GROUP BY ALL""")
    overtime = [r for r in rows if r[4] > 255]
    assert len(rows) > 2000 and len(overtime) > 50
    # Player minutes carry rounding (237-243 a regulation game), so allow 2% either way.
    assert [r for r in rows if abs(r[2] - r[3]) > 0.02 * r[3]] == []
    regulation = [r[2] for r in rows if r[4] <= 255]
    assert abs(sum(r[2] for r in overtime) / len(overtime) - sum(regulation) / len(regulation)) < 3

