"""Preflight: `enqueue` (and `plan --preflight`) refuse a selection that cannot run, listing every problem."""

from __future__ import annotations

import duckdb
import pytest

from tests.integration.engine_harness import WEEK, cli

pytestmark = pytest.mark.integration


def sql(env: dict, *statements: str) -> None:
    con = duckdb.connect(str(env["wh"]))
    for s in statements:
        con.execute(s)
    con.close()


def test_a_column_missing_in_one_season_is_named_and_nothing_is_enqueued(env: dict) -> None:
    sql(env, "UPDATE nba_raw.team_boxscores SET stl = NULL WHERE game_date >= DATE '2023-10-01'")
    result = cli(env, "enqueue", *WEEK)
    assert result.exit_code == 2, result.output
    assert ("schema_drift: nba_raw.team_boxscores.stl is missing in season 2023-24" in result.output
            and "read by team_defense_game_summary" in result.output), result.output
    assert result.output.strip().splitlines() == [result.output.strip()], "one problem: one line"
    assert result.output.startswith("error: preflight schema_drift: ") and "; nothing was enqueued" in result.output
    assert env["store"].list_runs() == []
    plan = cli(env, "plan", *WEEK, "--preflight", "--json")
    assert plan.exit_code == 2 and '"kind": "schema_drift"' in plan.stdout


def test_every_problem_is_listed_at_once(env: dict) -> None:
    sql(env, "ALTER TABLE nba_raw.team_boxscores DROP COLUMN blk", "DROP TABLE nba_raw.prop_lines")
    result = cli(env, "enqueue", *WEEK)
    assert result.exit_code == 2, result.output
    assert "nba_raw.team_boxscores has no column blk (read by team_defense_game_summary)" in result.output
    assert "raw table nba_raw.prop_lines does not exist (read by player_game_summary" in result.output
    assert "preflight found 2 problem(s)" in result.output
    assert env["store"].list_runs() == []


def test_phase4_alone_needs_phase3_tables(env: dict) -> None:
    result = cli(env, "enqueue", *WEEK[:4], "--phases", "4")
    assert result.exit_code == 2, result.output
    assert "nba_analytics.player_game_summary does not exist: run player_game_summary first" in result.output


def test_a_range_without_games_says_so(env: dict) -> None:
    result = cli(env, "enqueue", "--start", "2023-07-01", "--end", "2023-07-31")
    assert result.exit_code == 2, result.output
    assert "has no game dates between 2023-07-01 and 2023-07-31" in result.output
    assert "already succeeded" not in result.output
    assert env["store"].list_runs() == []


def test_a_clean_selection_passes_preflight(env: dict) -> None:
    result = cli(env, "plan", *WEEK, "--preflight")
    assert result.exit_code == 0, result.output
