"""The real pipeline through BigQuery's API: two real 2023-24 November weeks, through the engine, on the emulator.

The same `backfill enqueue` (November 1-14, Phases 3 and 4, with the October partitions its lookback
windows read) runs twice through real Celery workers: once on DuckDB, once on a `bigquery://`
warehouse pointed at the local BigQuery emulator (the raw tables loaded with the warehouse's
own load jobs), whose run history goes into the users' own table (their DDL and rows, created
with `backfill sql` as docs/adopting.md says). BigQuery's automatic batching gives tasks of 2 to
28 dates (several-date writes are one multi-statement transaction). Every table must then hold
the same rows on every date: per table and per date, the same number of
rows, every non-float value equal, and every float equal or (a rounding tie, see the end of
the test) one unit apart in the last decimal place it was rounded to. The BigQuery run's
history is in BigQuery, and its tables are partitioned and clustered as the spec says.

What is not exercised here (the emulator cannot, see tests/contract/bigquery_emulator.py): the
one-date partition-decorator job (an `?endpoint=` warehouse, as here, sends one-date writes through
the transaction: the worker is the production `workers.app`, as a user's rehearsal), bytes billed.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from backfill.cli import cli
from backfill.spec import load_spec
from backfill.state import RedisStateStore, RunStatus
from backfill.warehouse import Warehouse
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba.raw import RAW_TABLES
from tests.contract.bigquery_emulator import EmulatedBigQueryWarehouse, Emulator, bigquery_emulator  # noqa: F401
from tests.integration.engine_harness import Worker, wait_run

REPO = Path(__file__).resolve().parents[2]
ADOPT = REPO / "examples" / "adopt"
SPEC = load_spec(REPO / "pipelines" / "nba")
# Two November weeks with what their windows read: Phase 3 from the season start (2023-10-24), as
# `--with-upstream` plans. (The whole month proved nothing more, in 68 BigQuery tasks, not 40: the
# emulator, at 1-3 s a job, was the suite's largest single use of CPU.)
SEASON_START, START, END = dt.date(2023, 10, 24), dt.date(2023, 11, 1), dt.date(2023, 11, 14)
NOVEMBER = ("--pipeline", str(REPO / "pipelines" / "nba"), "--start", START.isoformat(), "--end", END.isoformat(),
            "--phases", "3,4", "--with-upstream")
Rows = dict[str, dict[dt.date, list[tuple[Any, ...]]]]

pytestmark = pytest.mark.slow


def canonical(value: Any) -> str:
    if value is None:
        return "~"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def last_place(value: float) -> float:
    """One unit in the last decimal place the value was rounded to (0.4437 -> 0.0001)."""
    text = repr(value)
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return 10.0 ** -decimals


def table_rows(wh: Warehouse) -> Rows:
    """table -> date -> the rows over the run's dates, sorted by their non-float columns."""
    out: Rows = {}
    for name in SPEC.order:
        proc = SPEC.processors[name]
        cols = [c.name for c in proc.columns]
        found = wh.query(f"SELECT {', '.join(cols)} FROM {proc.target} "
                         f"WHERE {proc.partition} BETWEEN @a AND @b", {"a": SEASON_START, "b": END})
        by_date: dict[dt.date, list[tuple[Any, ...]]] = defaultdict(list)
        for r in found:
            by_date[r[proc.partition]].append(tuple(r[c] for c in cols))
        out[proc.target] = {d: sorted(v, key=lambda row: [canonical(x) for x in row if not isinstance(x, float)])
                            for d, v in by_date.items()}
    return out


def differences(want: list[tuple[Any, ...]], got: list[tuple[Any, ...]]) -> tuple[list[str], int]:
    """Rows that differ (exactly, but floats within one unit of their last rounded place), and
    how many float values needed that tolerance."""
    if len(want) != len(got):
        return [f"{len(want)} rows vs {len(got)}"], 0
    bad, rounded = [], 0
    for a, b in zip(want, got, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if x != y:
                    rounded += 1
                    if abs(x - y) > last_place(x) * 1.001:
                        bad.append(f"{a} vs {b}")
            elif canonical(x) != canonical(y):
                bad.append(f"{a} vs {b}")
    return bad, rounded


@pytest.fixture
def emulated(bigquery_emulator: Emulator) -> Iterator[EmulatedBigQueryWarehouse]:  # noqa: F811
    wh = bigquery_emulator.warehouse(labels={"suite": "pipeline"})
    yield wh
    wh.close()


def copy_raw(src: Warehouse, dst: Warehouse) -> int:
    """The season's raw rows up to END (reference tables whole), one load job per table."""
    n = 0
    for table in RAW_TABLES:
        where = (f" WHERE {table.partition} BETWEEN @a AND @b" if table.partition else "")
        rows = src.query(f"SELECT {', '.join(table.column_names)} FROM {table.name}{where}",
                         {"a": SEASON_START - dt.timedelta(days=30), "b": END})
        dst.create_table(table)
        if rows:
            n += dst.insert_rows(table.name, rows)
    return n


def test_real_november_through_the_engine_on_the_emulator_equals_duckdb(
        real_nba_warehouse: Path, bigquery_emulator: Emulator, emulated: EmulatedBigQueryWarehouse,  # noqa: F811
        redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same `backfill enqueue` of two November weeks, once with a DuckDB worker, once with a BigQuery one."""
    duck = tmp_path / "real.duckdb"
    shutil.copyfile(real_nba_warehouse, duck)
    for proc in SPEC.processors.values():  # the emulator is shared by the session: start from no outputs
        emulated.execute(f"DROP TABLE IF EXISTS {proc.target}")
    emulated.execute(f"DROP TABLE IF EXISTS {SPEC.run_history_table}")
    with DuckDBWarehouse(duck, hold=False) as src:
        assert copy_raw(src, emulated) > 4000  # the season to mid-November: box scores, props, reference tables
    url = f"bigquery://{bigquery_emulator.project}/US?endpoint={bigquery_emulator.endpoint}"
    store = RedisStateStore.from_url(redis_server.url)
    # The users' run-history table as it is (their DDL and two of their rows), created the way
    # docs/adopting.md says: the BigQuery run then writes its history into it.
    made = CliRunner().invoke(cli, ["--warehouse", url, "--home", str(tmp_path / "sql"), "sql",
                                    str(ADOPT / "their-run-history.sql")], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    their_types = emulated.table_columns(SPEC.run_history_table)
    theirs = emulated.query(f"SELECT * FROM {SPEC.run_history_table} ORDER BY processor_name")
    assert len(theirs) == 2

    def run(warehouse: str, app: str) -> tuple[str, float]:
        worker = Worker(redis_server.url, duck, tmp_path / app, concurrency=4, app=app,
                        BACKFILL_WAREHOUSE=warehouse).start()
        try:
            clock = time.monotonic()
            result = CliRunner().invoke(cli, ["--redis-url", redis_server.url, "--warehouse", warehouse,
                                              "--home", str(tmp_path / app), "enqueue", *NOVEMBER],
                                        catch_exceptions=False)
            assert result.exit_code == 0, result.output
            run_id = result.stdout.strip().splitlines()[-1]
            record = wait_run(store, run_id, timeout=600)
            took = time.monotonic() - clock
        finally:
            worker.stop()
        assert record.status is RunStatus.succeeded, (app, record, worker.log.read_text()[-3000:])
        return run_id, took

    duck_run, duck_took = run(f"duckdb:///{duck}", "workers.app")
    bq_run, bq_took = run(url, "workers.app")
    tasks = store.tasks(bq_run).values()
    sizes = {len(t.dates) for t in tasks}
    assert max(sizes) > 1, f"want several-date tasks (the transaction path), got sizes {sizes}"
    assert {t.processor for t in tasks} == set(SPEC.order)
    print(f"\nNovember 1-14: DuckDB {len(store.tasks(duck_run))} tasks in {duck_took:.0f} s, BigQuery emulator "
          f"{len(tasks)} tasks (sizes {sorted(sizes)}) in {bq_took:.0f} s")

    # The run history of the BigQuery run is in BigQuery: one success per task and date.
    recorded = emulated.query(f"SELECT processor_name, data_date, status FROM {SPEC.run_history_table} "
                              "WHERE run_id = @r", {"r": bq_run})
    latest = {(r["processor_name"], r["data_date"]): r["status"] for r in recorded if r["status"] != "running"}
    assert latest == {(t.processor, d): "success" for t in tasks for d in t.dates}
    # Their table kept its columns, types and rows; every row of ours speaks their vocabulary, and
    # their success-rate query (the third of their validation queries) reads 100% for the run.
    after = emulated.table_columns(SPEC.run_history_table)
    assert {c: after[c] for c in their_types} == their_types
    assert emulated.query(f"SELECT {', '.join(their_types)} FROM {SPEC.run_history_table} "
                          "WHERE run_id LIKE 'live-%' ORDER BY processor_name") == theirs
    ours = emulated.query(f"SELECT * FROM {SPEC.run_history_table} WHERE run_id = @r", {"r": bq_run})
    for r in ours:
        assert r["phase"] == SPEC.phase_name(SPEC.processors[r["processor_name"]].phase), r
        assert (r["season_year"], r["backfill_mode"]) == (2023, True), r
        assert r["started_at"] is not None and (r["status"] == "running" or
                                                (r["success"] is True and r["processed_at"] is not None)), r
    queries = CliRunner().invoke(cli, ["--warehouse", url, "--home", str(tmp_path / "sql"), "sql", "--json",
                                       str(ADOPT / "validation-queries.sql")], catch_exceptions=False)
    assert queries.exit_code == 0, queries.output
    ran = {(r["processor_name"], r["phase"]) for r in ours}
    rates = json.loads(queries.stdout)[2]["rows"]
    assert {(r["processor_name"], r["phase"]): r["success_rate"] for r in rates
            if (r["processor_name"], r["phase"]) in ran} == {k: 100.0 for k in ran}
    # Tables are created partitioned by their date and clustered as the spec says.
    for name in SPEC.order:
        proc = SPEC.processors[name]
        meta = emulated.client.get_table(f"{emulated.project}.{proc.target}")
        assert meta.time_partitioning is not None and meta.time_partitioning.field == proc.partition, name
        assert list(meta.clustering_fields or []) == list(proc.table.cluster or []), name

    with DuckDBWarehouse(duck, hold=False) as wh:
        want_rows = table_rows(wh)
    got_rows = table_rows(emulated)
    rounded_total = 0
    for target, per_date in want_rows.items():
        assert {d for d in per_date if d >= START}, f"{target}: no rows in November 1-14"
        assert per_date.keys() == got_rows[target].keys(), f"{target}: dates differ"
        for d, rows in per_date.items():
            bad, rounded = differences(rows, got_rows[target][d])
            rounded_total += rounded
            assert not bad, f"{target} on {d} differs between DuckDB and BigQuery: {bad[:3]}"
    # Rounding ties: ROUND(FLOAT64) of a value like 0.44375 (stored as 0.443749999...) gives
    # 0.4437 in our DuckDB 2.0 (and in ZetaSQL's RoundDecimal, read in its source) and 0.4438 in
    # the emulator's DuckDB 1.5.5; allowed (one unit in the last place) and counted.
    total = sum(len(rows) for per_date in want_rows.values() for rows in per_date.values())
    print(f"{total} rows; float values one last-place unit apart (rounding ties): {rounded_total}")
    assert rounded_total < total // 20, rounded_total


def test_plan_cost_dry_runs_one_task_per_processor_and_season(bigquery_emulator: Emulator,  # noqa: F811
                                                              emulated: EmulatedBigQueryWarehouse,
                                                              tmp_path: Path) -> None:
    """`plan --cost` through the CLI against the emulator: real dry-run jobs, the JSON shape.

    The emulator reports 0 bytes for every dry run, so this proves the path (a dry-run job per
    processor and season, reaching the endpoint, the extrapolation's shape), not the numbers.
    """
    import json

    from pipelines.nba.sample import load_sample

    duck = tmp_path / "sample.duckdb"
    with DuckDBWarehouse(duck) as w:
        load_sample(w, seasons=("2023-24",), seed=7)
        copy_raw(w, emulated)
    for proc in SPEC.processors.values():  # the emulator is shared by the session: start from no outputs
        emulated.execute(f"DROP TABLE IF EXISTS {proc.target}")
    url = f"bigquery://{bigquery_emulator.project}/US?endpoint={bigquery_emulator.endpoint}"
    args = ["--warehouse", url, "plan", "--pipeline", str(REPO / "pipelines" / "nba"),
            "--start", "2023-10-24", "--end", "2023-11-07", "--cost", "--json"]
    before = json.loads(CliRunner().invoke(cli, args).output)["cost"]["processors"]
    # Before anything ran, the upstream processors' tables do not exist: said, not guessed.
    assert before[0]["skipped"] is None and "not found" in (before[-1]["skipped"] or "").lower()
    for proc in SPEC.processors.values():  # as the first run's tasks create them
        emulated.create_table(proc.table)
    result = CliRunner().invoke(cli, ["--warehouse", url, "plan", "--pipeline", str(REPO / "pipelines" / "nba"),
                                      "--start", "2023-10-24", "--end", "2023-11-07", "--cost", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    cost = out["cost"]
    assert set(cost) == {"usd_per_tib", "estimated_bytes", "estimated_usd", "processors"}
    assert [p["processor"] for p in cost["processors"]] == list(SPEC.order)
    planned: dict[str, int] = defaultdict(int)
    for wave in out["waves"]:
        for t in wave:
            planned[t["processor"]] += 1
    for p in cost["processors"]:
        assert p["tasks"] == planned[p["processor"]] and len(p["sampled_tasks"]) == 1, p
        assert p["estimated_bytes"] >= 0 and p["skipped"] is None
    on_duckdb = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{duck}", "plan", "--pipeline",
                                         str(REPO / "pipelines" / "nba"), "--start", "2023-10-24",
                                         "--end", "2023-11-07", "--cost"])
    assert on_duckdb.exit_code == 2 and "BigQuery" in on_duckdb.output
