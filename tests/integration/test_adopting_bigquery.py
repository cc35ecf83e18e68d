"""The users' run-history table on BigQuery's API: their DDL first, then a 7-day run through the CLI.

The same rehearsal a user can do: `backfill sql` creates their table (their DDL, two of their
rows) on the local BigQuery emulator, and `backfill enqueue` runs the test week (Phase 3) through a plain
`workers.app` worker on `bigquery://...?endpoint=` (one-date writes go through the transaction,
the emulator having no partition decorators). Their rows and column types stay as they were;
every row of ours speaks their vocabulary; their success-rate query reads 100% for the run.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from backfill.cli import cli
from backfill.spec import load_spec
from backfill.state import RedisStateStore, RunStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba.raw import RAW_TABLES
from tests.contract.bigquery_emulator import Emulator, bigquery_emulator  # noqa: F401
from tests.integration.engine_harness import WEEK, Worker, wait_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ADOPT = REPO / "examples" / "adopt"
NBA = load_spec(REPO / "pipelines" / "nba")
TABLE = NBA.run_history_table
SEASON_START, END = dt.date(2023, 10, 24), dt.date(2023, 11, 7)


def test_a_week_on_their_table_on_the_emulator(bigquery_emulator: Emulator, league_template: Path,  # noqa: F811
                                               redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"bigquery://{bigquery_emulator.project}/US?endpoint={bigquery_emulator.endpoint}"
    wh = bigquery_emulator.warehouse()
    for table in [TABLE, *(p.target for p in NBA.processors.values())]:  # the emulator is shared by the session
        wh.execute(f"DROP TABLE IF EXISTS {table}")
    with DuckDBWarehouse(league_template, read_only=True) as src:
        for table in RAW_TABLES:
            where = f" WHERE {table.partition} BETWEEN @a AND @b" if table.partition else ""
            rows = src.query(f"SELECT {', '.join(table.column_names)} FROM {table.name}{where}",
                             {"a": SEASON_START - dt.timedelta(days=30), "b": END})
            wh.create_table(table)
            wh.execute(f"DELETE FROM {table.name} WHERE TRUE")
            if rows:
                wh.insert_rows(table.name, rows)

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--redis-url", redis_server.url, "--warehouse", url,
                                          "--home", str(tmp_path / "home"), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    run("sql", str(ADOPT / "their-run-history.sql"))
    types = wh.table_columns(TABLE)
    theirs = wh.query(f"SELECT * FROM {TABLE} ORDER BY processor_name")
    assert len(theirs) == 2
    worker = Worker(redis_server.url, tmp_path / "unused.duckdb", tmp_path / "worker", concurrency=4,
                    BACKFILL_WAREHOUSE=url).start()
    try:
        # Phase 3 only: each emulator job takes 1-3 s, and Phase 4 on BigQuery is test_bigquery_pipeline's.
        run_id = run("enqueue", *WEEK[:4], "--phases", "3", "--with-upstream").strip().splitlines()[-1]
        record = wait_run(RedisStateStore.from_url(redis_server.url), run_id, timeout=600)
    finally:
        worker.stop()
    assert record.status is RunStatus.succeeded, (record, worker.log.read_text()[-3000:])

    after = wh.table_columns(TABLE)
    assert {c: after[c] for c in types} == types
    assert wh.query(f"SELECT {', '.join(types)} FROM {TABLE} WHERE run_id LIKE 'live-%' "
                    "ORDER BY processor_name") == theirs
    ours = wh.query(f"SELECT * FROM {TABLE} WHERE run_id = @r", {"r": run_id})
    assert ours and {r["processor_name"] for r in ours} == {n for n, p in NBA.processors.items() if p.phase == 3}
    for r in ours:
        assert r["phase"] == NBA.phase_name(NBA.processors[r["processor_name"]].phase), r
        assert (r["status"], r["success"], r["season_year"], r["backfill_mode"]) == ("success", True, 2023, True)
        assert r["processed_at"] is not None and r["started_at"] is not None
    rates = json.loads(run("sql", "--json", str(ADOPT / "validation-queries.sql")))[2]["rows"]
    ran = {(r["processor_name"], r["phase"]) for r in ours}
    assert {(r["processor_name"], r["phase"]): r["success_rate"] for r in rates if
            (r["processor_name"], r["phase"]) in ran} == {k: 100.0 for k in ran}
