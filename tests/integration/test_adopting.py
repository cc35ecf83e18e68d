"""Dropping into the users' platform as it is (issue 23), through the CLI and a real worker on DuckDB.

Their run-history table with their DDL and rows, their `success` rows adopted (and verified on
request), their processors' backfill options by default, and a service that speaks their
`/process-date-range` (examples/adopt). On the BigQuery emulator, their table (created with
`backfill sql`) takes the history of test_bigquery_pipeline.py's November run.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from backfill.calendar import Calendar
from backfill.executor import execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.spec import load_spec
from backfill.state import RunStatus, TaskStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import free_port
from tests.integration.engine_harness import WEEK, cli, enqueue, wait_run
from tests.support.examples import example_module

REPO = Path(__file__).resolve().parents[2]
ADOPT = REPO / "examples" / "adopt"
sys.path.insert(0, str(ADOPT))
_service = example_module(ADOPT / "service.py", "adopt_service")
Service, serve = _service.Service, _service.serve

pytestmark = pytest.mark.integration
TABLE = "nba_reference.processor_run_history"
NBA = load_spec(REPO / "pipelines" / "nba")
THEIR_STATUSES = {"running", "success", "failed", "partial", "skipped"}


def their_table(env: dict, tmp_path: Path, *, phase_type: str = "STRING") -> DuckDBWarehouse:
    """Their DDL and two of their rows, created through `backfill sql` as a user would."""
    sql = (ADOPT / "their-run-history.sql").read_text()
    if phase_type != "STRING":
        sql = sql.replace("  phase STRING,", f"  phase {phase_type},").replace("'phase_3_analytics'", "3")
    file = tmp_path / "theirs.sql"
    file.write_text(sql)
    result = cli(env, "sql", str(file))
    assert result.exit_code == 0, result.output
    return DuckDBWarehouse(env["wh"], hold=False)


def query_3(env: dict) -> list[dict[str, Any]]:
    """Their success-rate query (Decision 7, query 3) as they wrote it, through `backfill sql`."""
    result = cli(env, "sql", "--json", str(ADOPT / "validation-queries.sql"))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)[2]["rows"]


def test_a_week_on_their_table_keeps_their_rows_and_their_query_3_reads_100_percent(env: dict,
                                                                                    tmp_path: Path) -> None:
    wh = their_table(env, tmp_path)
    types = wh.table_columns(TABLE)
    theirs = wh.query(f"SELECT * FROM {TABLE} ORDER BY processor_name")
    assert len(theirs) == 2
    env["worker"]()
    run_id = enqueue(env, "--with-upstream")
    run = wait_run(env["store"], run_id, timeout=300)
    assert run.status is RunStatus.succeeded, run

    after = wh.table_columns(TABLE)
    assert {c: after[c] for c in types} == types  # no column of theirs retyped
    assert wh.query(f"SELECT {', '.join(types)} FROM {TABLE} WHERE run_id LIKE 'live-%' "
                    "ORDER BY processor_name") == theirs  # nor a row of theirs touched
    ours = wh.query(f"SELECT * FROM {TABLE} WHERE run_id = @r", {"r": run_id})
    assert len(ours) == sum(len(t.dates) for t in env["store"].tasks(run_id).values())
    for r in ours:
        assert r["phase"] == NBA.phase_name(NBA.processors[r["processor_name"]].phase), r
        assert r["status"] in THEIR_STATUSES and r["status"] == "success" and r["success"] is True
        assert r["processed_at"] is not None and r["started_at"] is not None and r["season_year"] == 2023
        assert (r["backfill_mode"], r["triggered_by"], r["failure_category"]) == (True, "backfill", None)
        assert json.loads(r["options"]) == {"backfill_mode": True, "skip_downstream_trigger": True,
                                            "strict_mode": False}
    rates = {(r["processor_name"], r["phase"]): r["success_rate"] for r in query_3(env)}
    ran = {(r["processor_name"], r["phase"]) for r in ours}
    assert ran and {k: rates[k] for k in ran} == {k: 100.0 for k in ran}
    assert rates[("TeamOffenseGameSummaryProcessor", "phase_3_analytics")] == 0.0  # their failed row, read too


def test_a_phase_int64_column_stops_enqueue_with_exit_2_naming_it(env: dict, tmp_path: Path) -> None:
    wh = their_table(env, tmp_path, phase_type="INT64")
    types = wh.table_columns(TABLE)
    result = cli(env, "enqueue", *WEEK)
    assert result.exit_code == 2, result.output
    assert "nba_reference.processor_run_history.phase is INT64" in result.output
    assert env["store"].list_runs() == []
    assert wh.table_columns(TABLE) == types and len(wh.query(f"SELECT * FROM {TABLE}")) == 2


def test_their_success_rows_are_adopted_and_verify_existing_reruns_an_emptied_one(env: dict,
                                                                                  tmp_path: Path) -> None:
    wh = their_table(env, tmp_path)
    cal = Calendar.from_warehouse(wh, NBA.schedule_table)
    days = cal.game_dates_between(*(dt.date.fromisoformat(d) for d in (WEEK[1], WEEK[3])))
    adopted = days[:3]
    # Their processor wrote these partitions and its own history rows, under its class name.
    plan = build_plan(NBA, cal, PlanRequest(ranges=((adopted[0], adopted[-1]),), batch=1,
                                            processors=frozenset({"player_game_summary"})))
    for task in plan.tasks():
        assert execute_task(task, wh, NBA).status == "success"
    for d in adopted:
        wh.execute(f"INSERT INTO {TABLE} (processor_name, run_id, season_year, status, data_date, started_at, "
                   "processed_at, phase) VALUES ('PlayerGameSummaryProcessor', 'live', 2023, 'success', @d, "
                   "TIMESTAMP '2023-12-01 08:00:00+00', TIMESTAMP '2023-12-01 08:02:00+00', 'phase_3_analytics')",
                   {"d": d})
    selection = ("--start", WEEK[1], "--end", WEEK[3], "--processors", "player_game_summary")

    found = cli(env, "gaps", *selection, "--json")
    doc = json.loads(found.stdout)
    assert found.exit_code == 1 and doc["counts"]["adopted"] == 3
    assert {g["date"] for g in doc["gaps"]} == {d.isoformat() for d in days[3:]}
    dry = cli(env, "enqueue", *selection, "--dry-run")
    assert "3 task date(s) already succeeded" in dry.output and "3 of them adopted" in dry.output

    emptied = adopted[1]
    wh.execute("DELETE FROM nba_analytics.player_game_summary WHERE game_date = @d", {"d": emptied})
    assert cli(env, "gaps", *selection).exit_code == 1
    assert emptied.isoformat() not in {g["date"] for g in json.loads(cli(env, "gaps", *selection, "--json").stdout)[
        "gaps"]}  # trusted as their history says ...
    verified = json.loads(cli(env, "gaps", *selection, "--json", "--verify-existing").stdout)
    gap = next(g for g in verified["gaps"] if g["date"] == emptied.isoformat())
    assert "adopted success fails its checks: 0 rows" in gap["reason"]  # ... unless held to expect:
    assert (verified["counts"]["adopted"], verified["counts"]["adopted_failing_checks"]) == (2, 1)

    env["worker"]()
    run_id = enqueue(env, "--verify-existing", selection=selection)
    assert wait_run(env["store"], run_id, timeout=180).status is RunStatus.succeeded
    ran = {d for t in env["store"].tasks(run_id).values() for d in t.dates}
    assert emptied in ran and not ran & {adopted[0], adopted[2]}
    assert wh.query("SELECT COUNT(*) AS n FROM nba_analytics.player_game_summary WHERE game_date = @d",
                    {"d": emptied})[0]["n"] > 0


# -- their endpoint, their options -------------------------------------------------------
@contextmanager
def adopt_pipeline(env: dict, tmp_path: Path, service: Service) -> Iterator[Path]:
    """examples/adopt pointed at `service` on a free port; the pipeline directory."""
    port = free_port()
    server = serve(service, port)
    pipe = tmp_path / "adopt"
    pipe.mkdir()
    for f in ("processors.py", "team_margin.sql"):
        (pipe / f).write_text((ADOPT / f).read_text())
    (pipe / "pipeline.yaml").write_text((ADOPT / "pipeline.yaml").read_text().replace("127.0.0.1:8766",
                                                                                      f"127.0.0.1:{port}"))
    try:
        yield pipe
    finally:
        server.shutdown()
        server.server_close()


def backfill_modes(wh: DuckDBWarehouse, run_id: str) -> dict[str, set[Any]]:
    """backfill_mode as each kind's table holds it, and as the run's history rows record it."""
    tables = {"http": "adopt_analytics.team_points", "python": "adopt_precompute.top_scorer_share",
              "sql": "adopt_precompute.team_margin"}
    out = {kind: {r["b"] for r in wh.query(f"SELECT DISTINCT backfill_mode AS b FROM {t}")}
           for kind, t in tables.items()}
    out["history"] = {r["backfill_mode"] for r in wh.query(
        "SELECT backfill_mode FROM adopt_reference.processor_run_history WHERE run_id = @r", {"r": run_id})}
    return out


def test_their_endpoint_and_their_options_through_a_worker(env: dict, tmp_path: Path) -> None:
    key = f"adopt-{uuid.uuid4().hex}"
    service = Service(f"duckdb:///{env['wh']}", key)
    days = ("--start", "2023-11-01", "--end", "2023-11-02")
    with adopt_pipeline(env, tmp_path, service) as pipe:
        worker = env["worker"](ADOPT_API_KEY=key)
        first = enqueue(env, "--pipeline", str(pipe), selection=days)
        assert wait_run(env["store"], first, timeout=180).status is RunStatus.succeeded
        wh = DuckDBWarehouse(env["wh"], hold=False)
        assert backfill_modes(wh, first) == {k: {True} for k in ("http", "python", "sql", "history")}
        body = service.seen[-1]["body"]
        assert set(body["processors"]) <= {"TeamPointsProcessor", "PlayerPointsProcessor"}
        assert (body["start_date"], body["end_date"]) == ("2023-11-01", "2023-11-02")
        assert (body["backfill_mode"], body["skip_downstream_trigger"], body["strict_mode"]) == (True, True, False)

        second = enqueue(env, "--pipeline", str(pipe), "--force", "--option", "backfill_mode=false", selection=days)
        assert wait_run(env["store"], second, timeout=180).status is RunStatus.succeeded
        assert backfill_modes(wh, second) == {k: {False} for k in ("http", "python", "sql", "history")}

        service.fail["PlayerPointsProcessor"] = "box score feed missing for the range"
        third = enqueue(env, "--pipeline", str(pipe), "--force", selection=days)
        assert wait_run(env["store"], third, timeout=180).status is RunStatus.failed
        states = env["store"].states(third)
        tasks = env["store"].tasks(third)
        by_proc = {(tasks[t].processor, s) for t, s in states.items()}
        assert by_proc == {("team_points", TaskStatus.success), ("player_points", TaskStatus.failed),
                           ("top_scorer_share", TaskStatus.blocked), ("team_margin", TaskStatus.success)}
        rows = wh.query("SELECT * FROM adopt_reference.processor_run_history WHERE run_id = @r", {"r": third})
        failed = [r for r in rows if r["processor_name"] == "player_points"]
        assert failed and all(r["status"] == "failed" and "PlayerPointsProcessor error: box score feed missing "
                              "for the range" in r["error_message"] for r in failed)
        blocked = [r for r in rows if r["processor_name"] == "top_scorer_share"]
        assert blocked and all((r["status"], r["outcome"]) == ("skipped", "blocked") and r["started_at"]
                               for r in blocked)
        assert all({k.lower(): v for k, v in s["headers"].items()}["x-api-key"] == key
                   for s in service.seen)  # it was sent ...
        shown = [cli(env, "status", third, "--json").output, cli(env, "status", third).output,
                 cli(env, "report", third, "--pipeline", str(pipe)).output,
                 json.dumps(env["store"].results(third), default=str), json.dumps(rows, default=str),
                 worker.log.read_text(errors="replace")]
    assert "box score feed missing" in shown[0]
    assert not [i for i, text in enumerate(shown) if key in text]  # ... and is nowhere else
