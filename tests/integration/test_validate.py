"""`backfill validate` and `gaps --stale`: the validation issue's acceptance, on real 2022-23.

The season's Phase 3 and Phase 4 are computed in-process (one set-based task per processor)
and recorded in the run history, code versions included, as a finished backfill would leave
them. Expected findings are derived here from the schedule and from the corruption the test
itself applies, not from the validator's own window resolution.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result

from backfill.calendar import Calendar
from backfill.cli import cli
from backfill.cli.run import enqueue
from backfill.cli.selection import build_request, plan_from_warehouse
from backfill.executor import execute_task
from backfill.planner import PlanRequest
from backfill.runhistory import RunHistory
from backfill.spec import load_spec
from backfill.validate.spotcheck import sample_partitions
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import require_nba_data
from tests.support.history import rows_of
from tests.support.nba import run_in_process, schedule

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipelines" / "nba"
SEASON = ("--start", "2022-10-01", "--end", "2023-06-30")
PHASE_4_READERS = ("team_defense_zone_analysis", "player_composite_factors", "ml_feature_store")


@pytest.fixture(scope="module")
def season_full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real 2022-23 raw data with Phase 3 and Phase 4 complete and in the run history."""
    from pipelines.nba.importer import import_nba

    data = require_nba_data("player_logs/player_logs_2022-23.csv", "playoff_player_logs/P23.csv")
    root = tmp_path_factory.mktemp("validate2022")
    subset = root / "data"
    for folder, name in (("player_logs", "player_logs_2022-23.csv"), ("playoff_player_logs", "P23.csv")):
        (subset / folder).mkdir(parents=True)
        (subset / folder / name).symlink_to(data / folder / name)
    path = root / "wh.duckdb"
    spec = load_spec(PIPELINE)
    with DuckDBWarehouse(path) as w:
        import_nba(w, subset)
        cal = Calendar.from_warehouse(w, spec.schedule_table)
        season = cal.seasons["2022-23"]
        request = PlanRequest(ranges=((season.start, season.end),), phases=frozenset({3, 4}),
                              batch_sizes={n: 400 for n in spec.processors})
        run_in_process(w, spec, cal, request, "full-run")
    return path


@pytest.fixture
def wh(season_full: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "wh.duckdb"
    shutil.copyfile(season_full, copy)
    return copy


def run(wh: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{wh}", "--home", str(wh.parent / "home"), *args],
                              catch_exceptions=False)


def checksums(wh: Path) -> dict[str, tuple[int, str]]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        tables = [f"{s}.{t}" for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables ORDER BY 1, 2").fetchall()]
        out = {}
        for t in tables:
            rows = sorted(repr(r) for r in con.execute(f"SELECT * FROM {t}").fetchall())
            out[t] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16])
        return out
    finally:
        con.close()


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == name)


def test_a_complete_real_season_validates_with_every_check_passing(wh: Path) -> None:
    before = checksums(wh)
    result = run(wh, "validate", *SEASON, "--json", "--seed", "3")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    days, _ = schedule(wh)
    assert report["passed"] and report["game_dates"] == len(days) == 209
    completeness = check(report, "completeness")
    # 16 dates early in the season hold no rows yet for some lookback processor: allowed, not "present".
    assert completeness["figures"] == [f"{10 * 209 - 16} of {10 * 209} (processor, game date) partitions present "
                                       "over 209 game dates; 16 bootstrap date(s) empty, as allowed"]
    assert all(s["missing"] == 0 for per in completeness["data"].values() for s in per.values())
    assert sum(s["bootstrap_empty"] for per in completeness["data"].values() for s in per.values()) == 16
    rates = check(report, "success_rate")["data"]
    assert {n: d["rate"] for n, d in rates.items()} == {n: 1.0 for n in load_spec(PIPELINE).order}
    assert check(report, "row_counts")["data"]["team_offense_game_summary"]["median"] > 0
    assert "35795 of 35795 rows" in check(report, "coverage")["figures"][0]
    sampled = check(report, "spot_checks")["data"]["sampled"]
    assert len(sampled) == 3 and all(s["stored_rows"] == s["recomputed_rows"] > 0 for s in sampled)
    assert check(report, "staleness")["data"] == {"commands": [], "stale": 0, "unversioned": 0}
    keys = check(report, "keys")
    assert keys["passed"] and keys["figures"] == ["15 table(s) with a declared key checked for repeated keys"]
    assert checksums(wh) == before, "validate must leave every table as it found it (scratch tables dropped)"
    human = run(wh, "validate", *SEASON, "--seed", "3")
    assert human.exit_code == 0 and "PASSED" in human.stdout and "100.0%" in human.stdout


def test_the_all_star_break_and_the_hole_before_the_playoffs_are_not_findings(wh: Path) -> None:
    days, _ = schedule(wh)
    span = (dt.date(2023, 2, 10), dt.date(2023, 4, 20))
    inside = [d for d in days if span[0] <= d <= span[1]]
    without_games = (span[1] - span[0]).days + 1 - len(inside)
    assert not {dt.date(2023, 2, 17), dt.date(2023, 2, 22), dt.date(2023, 4, 12)} & set(days)
    assert without_games >= 9, "the span must hold the break and the hole, or this test proves nothing"
    result = run(wh, "validate", "--start", span[0].isoformat(), "--end", span[1].isoformat(), "--json",
                 "--spot-checks", "0")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["game_dates"] == len(inside)


def corrupt(wh: Path) -> dict[str, Any]:
    """The issue's corruption; returns the keys it touched."""
    con = duckdb.connect(str(wh))
    try:
        con.execute("DELETE FROM nba_analytics.player_game_summary WHERE game_date = DATE '2023-01-10'")
        minutes = con.execute("SELECT game_id, player_id FROM nba_analytics.player_game_summary "
                              "WHERE game_date = DATE '2023-02-01' ORDER BY game_id, player_id LIMIT 20").fetchall()
        con.execute("UPDATE nba_analytics.player_game_summary SET minutes = 75 WHERE game_date = DATE '2023-02-01' "
                    "AND (game_id, player_id) IN (SELECT * FROM (VALUES " +
                    ", ".join(f"('{g}', {p})" for g, p in minutes) + "))")
        nulls = con.execute("SELECT game_id, player_id FROM nba_analytics.player_game_summary "
                            "WHERE game_date = DATE '2023-03-01' ORDER BY game_id, player_id LIMIT 5").fetchall()
        con.execute("UPDATE nba_analytics.player_game_summary SET player_name = NULL "
                    "WHERE game_date = DATE '2023-03-01' AND (game_id, player_id) IN (SELECT * FROM (VALUES " +
                    ", ".join(f"('{g}', {p})" for g, p in nulls) + "))")
        factors = con.execute("SELECT team, player_id FROM nba_precompute.player_composite_factors "
                              "WHERE game_date = DATE '2023-03-15' ORDER BY team, player_id LIMIT 3").fetchall()
        con.execute("UPDATE nba_precompute.player_composite_factors SET composite_score = composite_score + 0.5 "
                    "WHERE game_date = DATE '2023-03-15' AND (team, player_id) IN (SELECT * FROM (VALUES " +
                    ", ".join(f"('{t}', {p})" for t, p in factors) + "))")
        candidates = [(p, d) for p, d in con.execute(
            "SELECT DISTINCT processor, game_date FROM (" + " UNION ALL ".join(
                f"SELECT '{n}' AS processor, {p.partition} AS game_date FROM {p.target}"
                for n, p in load_spec(PIPELINE).processors.items()) + ")").fetchall()]
    finally:
        con.close()
    return {"minutes": minutes, "nulls": nulls, "factors": factors, "candidates": candidates}


def test_a_corrupted_season_fails_and_each_problem_is_named(wh: Path) -> None:
    touched = corrupt(wh)
    target = ("player_composite_factors", dt.date(2023, 3, 15))
    seed = next(s for s in range(20000) if target in sample_partitions(touched["candidates"], 3, s))
    result = run(wh, "validate", *SEASON, "--json", "--seed", str(seed), "--markdown", str(wh.parent / "signoff.md"))
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert not report["passed"]

    [gap] = check(report, "completeness")["findings"]
    assert gap["processor"] == "player_game_summary" and gap["dates"] == ["2023-01-10"]
    assert "2023-01-10" in gap["message"]

    [bad] = check(report, "ranges")["findings"]
    assert bad["processor"] == "player_game_summary" and "minutes: 20 value(s) outside minutes in [0, 60]" in \
        bad["message"] and bad["dates"] == ["2023-02-01"]
    first = sorted(touched["minutes"])[:5]
    assert bad["examples"] == [f"(2023-02-01, {g}, {p}): minutes = 75.0" for g, p in first]

    [null] = check(report, "nulls")["findings"]
    assert "player_game_summary.player_name: 5 NULL(s) on 1 date(s)" in null["message"]
    assert null["examples"] == [f"(2023-03-01, {g}, {p}): player_name = None" for g, p in sorted(touched["nulls"])]

    spots = check(report, "spot_checks")
    diff = next(f for f in spots["findings"] if f["processor"] == "player_composite_factors")
    assert diff["dates"] == ["2023-03-15"] and "3 row(s) differ" in diff["message"]
    for team, player in touched["factors"]:
        assert any(e.startswith(f"key (2023-03-15, {team}, {player}): composite_score stored") for e in
                   diff["examples"]), diff
    # The checks that were not corrupted still pass: the findings are the corruption, nothing else.
    assert check(report, "success_rate")["findings"] == [] and check(report, "coverage")["findings"] == []
    signoff = (wh.parent / "signoff.md").read_text()
    assert "**FAILED**" in signoff and "2023-01-10" in signoff and "player_name" in signoff
    assert f"--seed {seed}" in signoff
    again = json.loads(run(wh, "validate", *SEASON, "--json", "--seed", str(seed)).stdout)
    assert check(again, "spot_checks")["data"]["sampled"] == spots["data"]["sampled"], "--seed repeats the sample"


def edited_pipeline(tmp: Path) -> Path:
    """A copy of the NBA pipeline whose team_defense_game_summary uses another rating formula."""
    copy = tmp / "pipeline"
    shutil.copytree(PIPELINE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    sql = copy / "sql" / "team_defense_game_summary.sql"
    text = sql.read_text()
    changed = text.replace("ROUND(SAFE_DIVIDE(100 * o.points, o.possessions), 2) AS defensive_rating",
                           "ROUND(SAFE_DIVIDE(100 * o.points, o.possessions + o.tov), 2) AS defensive_rating")
    assert changed != text, "the formula to edit is not in the SQL any more"
    sql.write_text(changed)
    return copy


def run_printed(command: str, wh: Path) -> set[tuple[str, dt.date]]:
    """Carry out one printed `backfill enqueue` in-process: the same flags, the same planner, the same
    executor and run-history write as a worker; returns the partitions it wrote."""
    argv = shlex.split(command)
    assert argv[:2] == ["backfill", "enqueue"] and "--force" in argv, command
    params = enqueue.make_context("enqueue", argv[2:]).params
    spec = load_spec(params["pipeline"])
    request = build_request(start=params["start"], end=params["end"], ranges=params["ranges"],
                            phases=params["phases"], processors=params["processors"], seasons=params["seasons"],
                            season_types=params["season_types"], order=params["order"],
                            concurrency=params["concurrency"], force=params["force"], default_concurrency=2,
                            batch=params["batch"])
    run_id = f"recompute-{hashlib.sha1(command.encode()).hexdigest()[:8]}"
    written = set()
    with DuckDBWarehouse(wh) as w:
        plan, cal = plan_from_warehouse(spec, w, request)
        history = RunHistory(w, spec.run_history_table)
        for task in plan.tasks():
            result = execute_task(task, w, spec, run_id=run_id, calendar=cal)
            assert result.status == "success", (task.id, result.error_message)
            history.write(rows_of(result, task, run_id))
            written.update((task.processor, d) for d in task.dates)
    return written


def test_an_edited_sql_makes_exactly_its_partitions_and_their_readers_stale_until_recomputed(
        wh: Path, tmp_path: Path) -> None:
    pipeline = edited_pipeline(tmp_path)
    assert run(wh, "gaps", "--pipeline", str(PIPELINE), *SEASON, "--stale").exit_code == 0
    result = run(wh, "gaps", "--pipeline", str(pipeline), *SEASON, "--stale", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    days, _ = schedule(wh)
    # Each Phase 4 reader's windows (15 team games, 30 days) hold a team_defense_game_summary date on
    # every game date but opening night; player_composite_factors and ml_feature_store read it same-date.
    want = {("team_defense_game_summary", d) for d in days}
    want |= {(p, d) for p in PHASE_4_READERS for d in days[1:]}
    got = {(s["processor"], dt.date.fromisoformat(s["date"])) for s in report["stale"]}
    assert got == want
    assert {s["reasons"][0].split(":")[0] for s in report["stale"] if s["processor"] == "team_defense_game_summary"} \
        == {"code changed"}
    assert report["counts"]["by_processor"]["player_game_summary"] == 0
    human = run(wh, "gaps", "--pipeline", str(pipeline), *SEASON, "--stale")
    assert human.exit_code == 1 and "recompute them with `backfill enqueue" in human.stderr

    rewritten: set[tuple[str, dt.date]] = set()
    for command in report["commands"]:
        rewritten |= run_printed(command, wh)
    assert rewritten == want, "the printed commands recompute the stale partitions and nothing more"
    after = run(wh, "gaps", "--pipeline", str(pipeline), *SEASON, "--stale", "--json")
    assert after.exit_code == 0, after.output
    assert json.loads(after.stdout)["stale"] == []
    con = duckdb.connect(str(wh), read_only=True)
    try:
        recorded = {(p, d) for p, d in con.execute(
            "SELECT processor_name, data_date FROM nba_reference.processor_run_history "
            "WHERE run_id LIKE 'recompute-%'").fetchall()}
    finally:
        con.close()
    assert recorded == want, "the run history shows nothing else was recomputed"
