"""Keys hold everywhere: a row counted twice fails its date (`duplicate_key`), in the executor, in a
real run with real workers, in `validate`, and in the raw import of the real NBA CSVs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from backfill.calendar import Calendar
from backfill.executor import execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.spec import load_spec
from backfill.state import RunStatus, TaskStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import require_nba_data
from tests.integration.engine_harness import REPO, cli, enqueue, wait_run

pytestmark = pytest.mark.integration
PROCESSOR = "team_offense_game_summary"
TARGET = "nba_analytics.team_offense_game_summary"


def emit_one_row_twice(pipeline: Path, day: dt.date) -> None:
    """Make the processor's SQL write one row of `day` twice (one team of its first game), nothing else."""
    sql = pipeline / "sql" / f"{PROCESSOR}.sql"
    text = sql.read_text()
    tail = "LEFT JOIN game_length AS l ON l.game_id = g.game_id"
    assert text.rstrip().endswith(tail), "the SQL's last join moved: update this test"
    sql.write_text(text.rstrip() + f"""
CROSS JOIN UNNEST([1, 2]) AS copy
WHERE copy = 1 OR (g.game_date = DATE '{day}' AND g.team < g.opponent
                   AND g.game_id = (SELECT MIN(game_id) FROM g WHERE game_date = DATE '{day}'))
""")


@pytest.fixture
def broken(tmp_path: Path, league_template: Path) -> dict:
    pipeline = tmp_path / "nba"
    shutil.copytree(REPO / "pipelines" / "nba", pipeline)
    wh = tmp_path / "wh.duckdb"  # the same file as `env`'s, when a test uses both
    shutil.copyfile(league_template, wh)
    with DuckDBWarehouse(wh) as w:
        cal = Calendar.from_warehouse(w, "nba_raw.schedule")
    days = cal.game_dates_between(dt.date(2023, 11, 1), dt.date(2023, 11, 7))
    emit_one_row_twice(pipeline, days[2])
    return {"pipeline": pipeline, "wh": wh, "days": days, "bad": days[2], "calendar": cal}


def test_a_repeated_key_fails_its_date_alone_inside_a_batch(broken: dict) -> None:
    spec = load_spec(broken["pipeline"])
    days, bad = broken["days"], broken["bad"]
    request = PlanRequest(ranges=((days[0], days[-1]),), processors=frozenset({PROCESSOR}),
                          batch_sizes={PROCESSOR: len(days)})
    (task,) = build_plan(spec, broken["calendar"], request).tasks()
    assert task.dates == tuple(days), "one batch over the whole week, or this test proves nothing about batches"
    with DuckDBWarehouse(broken["wh"]) as w:
        result = execute_task(task, w, spec, calendar=broken["calendar"])
        stored = w.query(f"SELECT game_date, COUNT(*) AS n, COUNT(DISTINCT CONCAT(game_id, team)) AS k FROM {TARGET} "
                         "GROUP BY 1")
    assert {r["game_date"]: r["n"] - r["k"] for r in stored}[bad] == 1, "the SQL wrote exactly one row twice"
    assert result.status == "failed" and result.error_category == "duplicate_key"
    assert result.status_by_date == {d: "failed" if d == bad else "success" for d in days}
    category, message = result.date_issue(bad)
    assert category == "duplicate_key"
    assert message is not None and f"{TARGET}: 1 key(s) (game_date, game_id, team)" in message
    assert "1 extra row(s)" in message


def test_a_run_that_writes_a_key_twice_fails_those_dates_ends_partial_and_validate_names_the_key(
        env: dict, broken: dict) -> None:
    env["worker"]()
    days, bad = broken["days"], broken["bad"]
    run_id = enqueue(env, "--pipeline", str(broken["pipeline"]), "--processors", PROCESSOR, "--batch", "auto",
                     selection=("--start", str(days[0]), "--end", str(days[-1])))
    run = wait_run(env["store"], run_id, timeout=90)
    # Written, but wrong: the dates fail (never success), the run ends partial, as issue 21 asks.
    assert run.status is RunStatus.partial, run.status
    states = env["store"].states(run_id)
    results = env["store"].results(run_id)
    failed = [results[t] for t, s in states.items() if s is TaskStatus.failed]
    assert failed and all(r["status_by_date"][bad.isoformat()] == "failed" for r in failed)
    assert {r["issues_by_date"][bad.isoformat()][0] for r in failed} == {"duplicate_key"}
    history = DuckDBWarehouse(env["wh"], hold=False).query(
        "SELECT data_date, status, error_category FROM nba_reference.processor_run_history WHERE run_id = @r",
        {"r": run_id})
    assert {(r["data_date"], r["status"], r["error_category"]) for r in history if r["data_date"] == bad} == {
        (bad, "failed", "duplicate_key")}
    assert {r["status"] for r in history if r["data_date"] != bad} == {"success"}
    status = cli(env, "status", run_id, "--json")
    assert status.exit_code == 0, status.output
    info = json.loads(status.stdout)
    assert info["status"] == RunStatus.partial and {f["category"] for f in info["failures"]} == {"duplicate_key"}
    report = cli(env, "report", run_id, "--json")
    assert report.exit_code == 0, report.output
    assert json.dumps(json.loads(report.stdout)).count('"status": "partial"') >= 1

    result = cli(env, "validate", "--pipeline", str(broken["pipeline"]), "--start", str(days[0]), "--end",
                 str(days[-1]), "--processors", PROCESSOR, "--json", "--spot-checks", "0")
    assert result.exit_code == 1, result.output
    keys = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "keys")
    assert not keys["passed"]
    (finding,) = keys["findings"]
    assert finding["processor"] == PROCESSOR and finding["dates"] == [bad.isoformat()]
    assert f"{TARGET}: 1 key(s) (game_date, game_id, team)" in finding["message"]


def test_validate_finds_a_raw_table_row_repeated_after_the_import(tmp_path: Path, league_template: Path) -> None:
    from click.testing import CliRunner

    from backfill.cli import cli as backfill

    wh = tmp_path / "wh.duckdb"
    shutil.copyfile(league_template, wh)
    con = duckdb.connect(str(wh))
    day = con.execute("SELECT MIN(game_date) FROM nba_raw.player_boxscores WHERE game_date >= DATE '2023-11-01'"
                      ).fetchone()[0]  # type: ignore[index]
    con.execute("INSERT INTO nba_raw.player_boxscores SELECT * FROM nba_raw.player_boxscores "
                "WHERE game_date = ? ORDER BY game_id, player_id LIMIT 1", [day])
    con.close()
    result = CliRunner().invoke(backfill, ["--warehouse", f"duckdb:///{wh}", "validate", "--pipeline",
                                           str(REPO / "pipelines" / "nba"), "--start", str(day), "--end", str(day),
                                           "--phases", "3", "--json", "--spot-checks", "0"])
    keys = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "keys")
    (finding,) = keys["findings"]
    assert finding["processor"] is None and finding["dates"] == [str(day)]
    assert finding["message"].startswith("nba_raw.player_boxscores: 1 key(s) (game_id, player_id)")


def test_the_real_season_with_two_rows_repeated_is_refused_then_deduplicated(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from backfill.cli import cli as backfill

    source = require_nba_data("player_logs/player_logs_2023-24.csv") / "player_logs" / "player_logs_2023-24.csv"
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "csv" / "player_logs").mkdir(parents=True)
    copy = tmp_path / "csv" / "player_logs" / source.name
    copy.write_text("".join([*lines, lines[15], lines[2000]]), encoding="utf-8")
    assert len(lines) - 1 + 2 == 26_403, "the real 2023-24 season holds 26,401 rows"
    wh = tmp_path / "wh.duckdb"
    run = CliRunner()
    refused = run.invoke(backfill, ["--warehouse", f"duckdb:///{wh}", "data", "import-nba", str(tmp_path / "csv"),
                                    "--quiet"])
    assert refused.exit_code == 2, refused.output
    assert f"player_logs/{source.name} lines 16, 26403" in refused.stderr
    assert "lines 2001, 26404" in refused.stderr and "(game_id, player_id)" in refused.stderr
    assert not wh.exists(), "a refused import does not create the warehouse"
    kept = run.invoke(backfill, ["--warehouse", f"duckdb:///{wh}", "data", "import-nba", str(tmp_path / "csv"),
                                 "--quiet", "--dedupe", "--json"])
    assert kept.exit_code == 0, kept.output
    summary = json.loads(kept.stdout)
    assert summary["rows"]["nba_raw.player_boxscores"] == 26_401
    assert summary["deduplicated"] == {"nba_raw.player_boxscores": 2}
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("SELECT COUNT(*) - COUNT(DISTINCT (game_id, player_id)) FROM nba_raw.player_boxscores"
                       ).fetchone() == (0,)
    con.close()


def test_validate_counts_an_empty_bootstrap_date_as_allowed_never_as_present(tmp_path: Path,
                                                                             league_template: Path) -> None:
    from click.testing import CliRunner

    from backfill.cli import cli as backfill
    from tests.support.nba import run_in_process

    wh = tmp_path / "wh.duckdb"
    shutil.copyfile(league_template, wh)
    spec = load_spec(REPO / "pipelines" / "nba")
    names = ("team_defense_game_summary", "team_defense_zone_analysis")
    with DuckDBWarehouse(wh) as w:
        cal = Calendar.from_warehouse(w, spec.schedule_table)
        days = cal.game_dates_between(dt.date(2023, 10, 24), dt.date(2023, 10, 27))
        run_in_process(w, spec, cal, PlanRequest(ranges=((days[0], days[-1]),), processors=frozenset(names)),
                       "bootstrap")
        w.execute("DELETE FROM nba_precompute.team_defense_zone_analysis WHERE game_date = @d", {"d": days[0]})
    result = CliRunner().invoke(backfill, ["--warehouse", f"duckdb:///{wh}", "validate", "--pipeline",
                                           str(REPO / "pipelines" / "nba"), "--start", str(days[0]), "--end",
                                           str(days[-1]), "--processors", names[1], "--json", "--spot-checks", "0"])
    completeness = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "completeness")
    assert completeness["passed"], "an empty bootstrap date is allowed"
    n = len(days)
    assert completeness["figures"] == [f"{n - 1} of {n} (processor, game date) partitions present over {n} game "
                                       "dates; 1 bootstrap date(s) empty, as allowed"]
    assert completeness["data"][names[1]]["2023-24"] == {"game_dates": n, "with_rows": n - 1, "bootstrap_empty": 1,
                                                         "missing": 0}
