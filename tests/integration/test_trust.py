"""Nothing incomplete is ever marked done: the trust issue's acceptance, on real data, real Redis and workers.

Phase 3 of real 2022-23 is computed in-process up front (one set-based task per processor) and
recorded in the run history, as an earlier run would have; then Phase 4 runs through a real
`celery worker`. Expected outcomes are derived from the raw schedule here, not from the
planner's window resolution.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from backfill.calendar import Calendar
from backfill.checks import UpstreamCheck
from backfill.executor import execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.spec import load_spec
from backfill.state import RunStatus, TaskStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import require_nba_data
from tests.integration.engine_harness import cli, wait_run
from tests.support.nba import run_in_process, schedule

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipelines" / "nba"
SEASON_START = dt.date(2022, 10, 18)
DELETED = (dt.date(2022, 12, 20), dt.date(2022, 12, 21))  # two game dates of player_game_summary
MONTH = (dt.date(2023, 1, 12), dt.date(2023, 2, 11))  # a month after them: early windows hold them, late ones not
PSZ_GAMES = 20  # player_shot_zone_analysis: each team's last 20 games (pipeline.yaml)


@pytest.fixture(scope="module")
def season_2022(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real 2022-23 raw data, and Phase 3 from opening night to the month's end in the run history."""
    from pipelines.nba.importer import import_nba

    data = require_nba_data("player_logs/player_logs_2022-23.csv")
    root = tmp_path_factory.mktemp("real2022")
    subset = root / "data"
    (subset / "player_logs").mkdir(parents=True)
    (subset / "player_logs" / "player_logs_2022-23.csv").symlink_to(data / "player_logs" / "player_logs_2022-23.csv")
    path = root / "wh.duckdb"
    spec = load_spec(PIPELINE)
    with DuckDBWarehouse(path) as w:
        import_nba(w, subset)
        cal = Calendar.from_warehouse(w, spec.schedule_table)
        request = PlanRequest(ranges=((SEASON_START, MONTH[1]),), phases=frozenset({3}),
                              batch_sizes={n: 400 for n in spec.processors})
        run_in_process(w, spec, cal, request, "phase3-run")
    return path


def expected_psz_gaps(wh: Path, days: list[dt.date]) -> set[dt.date]:
    """Dates whose 20-team-game window holds a deleted date: some team played on it among its last 20 games."""
    _, team_games = schedule(wh)
    hit = set()
    for d in days:
        for dates in team_games.values():
            before = [g for g in dates if g < d][-PSZ_GAMES:]
            if set(before) & set(DELETED):
                hit.add(d)
    return hit


@pytest.fixture
def broken(season_2022: Path, env: dict) -> dict:
    """The env's warehouse replaced by the real season, with player_game_summary deleted on two dates."""
    env["wh"].write_bytes(season_2022.read_bytes())
    env["template"] = season_2022  # no worker holds it: read the schedule from here
    con = duckdb.connect(str(env["wh"]))
    con.execute("DELETE FROM nba_analytics.player_game_summary WHERE game_date IN (?, ?)", list(DELETED))
    con.close()
    return env


def phase4(env: dict, *extra: str) -> str:
    result = cli(env, "enqueue", "--start", MONTH[0].isoformat(), "--end", MONTH[1].isoformat(), "--phases", "4",
                 "--batch", "1", *extra)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def outcomes(env: dict, run_id: str) -> dict[str, dict[dt.date, str]]:
    states = env["store"].states(run_id)
    out: dict[str, dict[dt.date, str]] = defaultdict(dict)
    for tid, st in states.items():
        proc, _, day = tid.partition("@")
        out[proc][dt.date.fromisoformat(day)] = st.value
    return out


def test_strict_gap_fails_exactly_the_tasks_whose_windows_hold_it_and_gaps_says_how_to_fill(broken: dict) -> None:
    env = broken
    env["worker"]()
    run_id = phase4(env)
    run = wait_run(env["store"], run_id, timeout=300)
    got = outcomes(env, run_id)
    days = sorted(got["team_defense_zone_analysis"])
    psz_bad = expected_psz_gaps(env["template"], days)
    assert psz_bad and psz_bad != set(days), "the deleted dates must fall inside some windows and not others"
    assert run.status is RunStatus.failed
    # player_shot_zone_analysis: its 20-game windows; player_daily_cache: season to date, so every date
    # after, except where it is already blocked by the shot-zone analysis of its own date.
    assert {d for d, s in got["player_shot_zone_analysis"].items() if s == "failed"} == psz_bad
    assert {d for d, s in got["player_daily_cache"].items() if s == "blocked"} == psz_bad
    assert {d for d, s in got["player_daily_cache"].items() if s == "failed"} == set(days) - psz_bad
    assert set(got["team_defense_zone_analysis"].values()) == {"success"}
    assert {d for d, s in got["player_composite_factors"].items() if s == "blocked"} == psz_bad
    assert {d for d, s in got["player_composite_factors"].items() if s == "success"} == set(days) - psz_bad
    assert set(got["ml_feature_store"].values()) == {"blocked"}
    results = env["store"].results(run_id)
    for r in results.values():
        if r.get("status") == "failed":
            assert r["error_category"] == "dependency_gap", r
            assert re.search(r"player_game_summary@2022-12-2[01] \(0 rows in its table\)", r["error_message"]), r
    wh = DuckDBWarehouse(env["wh"], hold=False)
    written = {r["d"] for r in wh.query("SELECT DISTINCT game_date AS d FROM nba_precompute.player_shot_zone_analysis")}
    cache_rows = wh.query("SELECT COUNT(*) AS n FROM nba_precompute.player_daily_cache")[0]["n"]
    assert written == set(days) - psz_bad and cache_rows == 0  # the failed tasks wrote nothing

    gaps = cli(env, "gaps", "--start", MONTH[0].isoformat(), "--end", MONTH[1].isoformat(), "--phases", "4", "--json")
    assert gaps.exit_code == 1
    listed = {(g["processor"], g["date"]) for g in json.loads(gaps.stdout)["gaps"]}
    assert ("player_daily_cache", MONTH[0].isoformat()) in listed
    hint = gaps.stderr.strip().splitlines()[-1]
    fill = re.search(r"`(backfill enqueue [^`]*player_game_summary[^`]*)`", hint)
    assert fill, hint  # the hole is upstream: the hint refills it first
    args = fill.group(1).split()[1:]
    filled = cli(env, *args)
    assert filled.exit_code == 0, filled.output
    assert wait_run(env["store"], filled.stdout.strip().splitlines()[-1], timeout=120).status is RunStatus.succeeded
    again = cli(env, "retry", run_id)
    assert again.exit_code == 0, again.output
    assert wait_run(env["store"], run_id, timeout=300).status is RunStatus.succeeded
    assert set(env["store"].states(run_id).values()) == {TaskStatus.success}


def test_no_strict_runs_the_same_tasks_as_partial_with_their_coverage(broken: dict) -> None:
    env = broken
    env["worker"]()
    run_id = phase4(env, "--no-strict")
    wait_run(env["store"], run_id, timeout=300)
    results = env["store"].results(run_id)
    days = sorted(outcomes(env, run_id)["team_defense_zone_analysis"])
    psz_bad = expected_psz_gaps(env["template"], days)
    partial = defaultdict(set)
    for r in results.values():
        if r.get("status") == "partial":
            assert r["error_category"] == "dependency_gap", r
            assert re.search(r"player_game_summary: \d+ of \d+ game dates", r["error_message"]), r
            partial[r["processor"]].add(dt.date.fromisoformat(r["dates"][0]))
    assert partial["player_shot_zone_analysis"] == psz_bad
    assert partial["player_daily_cache"] == set(days)
    assert set(partial) == {"player_shot_zone_analysis", "player_daily_cache"}


def test_a_fully_run_real_month_has_no_success_with_zero_rows(season_2022: Path, tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    path.write_bytes(season_2022.read_bytes())
    spec = load_spec(PIPELINE)
    with DuckDBWarehouse(path) as w:
        cal = Calendar.from_warehouse(w, spec.schedule_table)
        ran: dict[tuple[str, dt.date], str] = {}
        check = UpstreamCheck(spec, cal, w, lambda keys: {k: ran[k] for k in keys if k in ran})
        # What the month's windows read, from opening night, in one task per processor; then the
        # month itself one task per date, so each date's outcome is its own.
        opening = (SEASON_START, MONTH[0] - dt.timedelta(days=1))
        before = build_plan(spec, cal, PlanRequest(ranges=(opening,), phases=frozenset({4}),
                                                   batch_sizes={n: 400 for n in spec.processors}))
        plan = build_plan(spec, cal, PlanRequest(ranges=(MONTH,), phases=frozenset({4}),
                                                 batch_sizes={n: 1 for n in spec.processors}))
        month = []
        for task in [*before.tasks(), *plan.tasks()]:
            r = execute_task(task, w, spec, check=check, calendar=cal)
            for d in task.dates:
                ran[(task.processor, d)] = r.date_status(d)
            if MONTH[0] <= task.dates[0] <= MONTH[1]:
                assert len(task.dates) == 1, task.id
                month.append(r)
            else:
                assert r.ok, (task.id, r.error_message)
    assert len(month) == 5 * len(cal.game_dates_between(*MONTH))
    assert all(r.status == "success" for r in month), [(r.task_id, r.error_message) for r in month if not r.ok][:5]
    assert not [r.task_id for r in month if any(n == 0 for n in r.rows_by_date.values())]


def test_one_teams_missing_box_score_row_makes_the_team_tables_partial_and_status_shows_it(env: dict) -> None:
    """Sample league, real worker: one team's row of one game is deleted from the raw team box scores."""
    con = duckdb.connect(str(env["wh"]))
    game, team, day = con.execute("SELECT game_id, team, game_date FROM nba_raw.team_boxscores "
                                  "WHERE game_date = DATE '2023-11-01' ORDER BY game_id, team LIMIT 1").fetchone()
    con.execute("DELETE FROM nba_raw.team_boxscores WHERE game_id = ? AND team = ?", [game, team])
    con.close()
    env["worker"]()
    result = cli(env, "enqueue", "--start", "2023-11-01", "--end", "2023-11-01", "--batch", "1",
                 "--processors", "team_offense_game_summary,team_defense_game_summary")
    assert result.exit_code == 0, result.output
    run_id = result.stdout.strip().splitlines()[-1]
    assert wait_run(env["store"], run_id, timeout=120).status is RunStatus.partial
    results = env["store"].results(run_id)
    for name in ("team_offense_game_summary", "team_defense_game_summary"):
        r = results[f"{name}@{day}"]
        assert (r["status"], r["error_category"]) == ("partial", "partial_data"), r
        assert f"no rows for team {team} in game {game}" in r["error_message"], r
    info = json.loads(cli(env, "status", run_id, "--json").stdout)
    assert info["status"] == "partial" and info["counts"]["partial"] >= 2
    assert {p["task_id"] for p in info["partials"]} >= {f"team_offense_game_summary@{day}",
                                                       f"team_defense_game_summary@{day}"}
    human = cli(env, "status", run_id)
    assert "partial" in human.output and f"team {team} in game {game}" in human.output
    gaps = cli(env, "gaps", "--start", str(day), "--end", str(day), "--phases", "3", "--json")
    listed = {(g["processor"], g["last_status"]) for g in json.loads(gaps.stdout)["gaps"]}
    assert ("team_offense_game_summary", "partial") in listed
