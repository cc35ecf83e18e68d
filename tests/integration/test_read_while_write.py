"""On DuckDB, commands that only read do not wait for a process holding the file (a worker).

A real second process holds the warehouse file open for writing, as a worker does between its
tasks during a run. `plan`, `gaps` and `validate` read a snapshot of the file and answer at
once; `enqueue` prints its run id at once, says what its request-ledger write waits for, and
writes it once the holder lets go.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backfill.runhistory import RunHistory
from backfill.spec import load_spec
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.integration.engine_harness import WEEK

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
HOLD = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
        "time.sleep(float(sys.argv[2]))")


def holder(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def backfill(env: dict, *args: str) -> subprocess.Popen[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    e.update(BACKFILL_REDIS_URL=env["redis"].url, BACKFILL_WAREHOUSE=f"duckdb:///{env['wh']}",
             BACKFILL_HOME=str(env["home"]), BACKFILL_PIPELINE=str(REPO / "pipelines" / "nba"), PYTHONPATH=str(REPO))
    return subprocess.Popen([str(Path(sys.executable).parent / "backfill"), *args], env=e, cwd=env["home"].parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_reads_use_a_snapshot_and_enqueue_prints_its_id_while_another_process_holds_the_file(env: dict) -> None:
    # As during a run: its target tables and run history exist (a run created them).
    wh = DuckDBWarehouse(env["wh"])
    spec = load_spec(str(REPO / "pipelines" / "nba"))
    for proc in spec.processors.values():
        wh.create_table(proc.table)
    RunHistory(wh, spec.run_history_table).ensure()
    wh.close()
    hold = holder(env["wh"], 120)
    try:
        for args, code in ((("plan", *WEEK), 0), (("gaps", *WEEK), 1), (("validate", *WEEK, "--spot-checks", "0"), 1)):
            began = time.monotonic()
            proc = backfill(env, *args)
            out, err = proc.communicate(timeout=60)
            took = time.monotonic() - began
            assert proc.returncode == code, (args, out[-1000:], err[-2000:])
            assert hold.poll() is None, "the holder must still hold the file"
            assert took < 15 and "waiting for the warehouse file" not in err, (args, took, err[-2000:])
        began = time.monotonic()
        enq = backfill(env, "enqueue", *WEEK)
        assert enq.stdout is not None
        run_id = enq.stdout.readline().strip()
        took = time.monotonic() - began
        assert run_id.startswith("bf-") and took < 15 and hold.poll() is None, (run_id, took, enq.communicate())
        time.sleep(5)  # the ledger write meets the held file (and says so) before the holder lets go
        assert enq.poll() is None, "enqueue must still wait for the file to write its ledger"
    finally:
        hold.kill()
        hold.wait()
    out, err = enq.communicate(timeout=150)
    assert enq.returncode == 0, err[-2000:]
    assert "waiting for the warehouse file" in err and "up to 120 s" in err, err
    ledger = DuckDBWarehouse(env["wh"], hold=False).query(
        "SELECT run_id FROM nba_reference.backfill_runs WHERE run_id = @r", {"r": run_id})
    assert ledger == [{"run_id": run_id}]


def test_a_ledger_write_that_cannot_get_the_file_warns_and_the_run_still_counts(env: dict, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import backfill.warehouse.duckdb as duck
    from tests.integration.engine_harness import cli

    wh = DuckDBWarehouse(env["wh"])
    spec = load_spec(str(REPO / "pipelines" / "nba"))
    for proc in spec.processors.values():
        wh.create_table(proc.table)
    RunHistory(wh, spec.run_history_table).ensure()
    wh.close()
    monkeypatch.setattr(duck, "_LOCK_WAIT_SECONDS", 2.0)  # the shipped 120 s, shortened for the test
    hold = holder(env["wh"], 60)
    try:
        result = cli(env, "enqueue", *WEEK)
        assert hold.poll() is None
    finally:
        hold.kill()
        hold.wait()
    assert result.exit_code == 0, result.output  # not 3: the run started and is going
    run_id = result.stdout.strip().splitlines()[-1]
    assert env["store"].get_run(run_id) is not None
    assert f"the request ledger of {run_id} was not written" in result.output, result.output
