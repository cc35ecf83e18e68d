"""Failures the engine must survive with real workers: a killed worker, a lost Redis, cancel, overlaps.

A failing processor blocking exactly its dependents, and retry after the fix, are proven without
Redis or Celery in tests/unit/test_engine_lifecycle.py; real failing SQL through real workers, and
`retry` after the fix, in tests/integration/test_alerts.py.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from backfill.state import RunStatus, TaskStatus
from backfill.triggers import Triggers
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.integration.engine_harness import OPENING, TEN_WEEKS, cli, enqueue, history, wait_run

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_killed_worker_mid_run_completes_without_duplicates(env: dict) -> None:
    """Default settings: the dead worker's running tasks come back when their 30 s lease expires."""
    first = env["worker"](concurrency=2)
    run_id = enqueue(env, "--batch", "1", selection=OPENING)
    store = env["store"]
    wait_run(store, run_id, timeout=60, until=lambda s: (
        Counter(s.states(run_id).values())[TaskStatus.running] > 0
        and Counter(s.states(run_id).values())[TaskStatus.success] > 3))
    first.kill()
    env["worker"](concurrency=2)
    run = wait_run(store, run_id, timeout=120)
    states = store.states(run_id)
    assert run.status is RunStatus.succeeded, states
    assert TaskStatus.running not in set(states.values()), states
    wh = DuckDBWarehouse(env["wh"], hold=False)
    for table in ("nba_analytics.player_game_summary", "nba_precompute.ml_feature_store"):
        rows = [tuple(sorted(r.items())) for r in wh.query(f"SELECT * FROM {table}")]
        assert rows and len(rows) == len(set(rows)), table
    per_task = Counter((r["task_id"], r["data_date"]) for r in history(env["wh"], run_id) if r["status"] == "success")
    assert set(per_task.values()) == {1}, per_task
    assert len(per_task) == len(states), set(states) - {t for t, _ in per_task}


@pytest.mark.slow
def test_redis_lost_mid_run_resume_skips_recorded_successes(env: dict) -> None:
    worker = env["worker"](concurrency=2)
    run_id = enqueue(env, "--batch", "1", selection=TEN_WEEKS)
    store = env["store"]
    wait_run(store, run_id, timeout=60, until=lambda s: len(history(env["wh"], run_id)) > 0)  # a bulk flush happened
    env["redis"].stop()
    env["redis"].start()  # same port, empty: run state, queue and chords are gone
    assert store.get_run(run_id) is None
    before = history(env["wh"], run_id)
    done_before = {(r["task_id"], r["data_date"]) for r in before if r["status"] == "success"}
    assert done_before

    result = cli(env, "resume", run_id)
    assert result.exit_code == 0, result.output
    time.sleep(1)
    assert worker.proc is not None
    assert worker.proc.poll() is None, "the worker must survive a broker restart"
    run = wait_run(store, run_id, timeout=180)
    assert run.status is RunStatus.succeeded
    after = history(env["wh"], run_id)
    per_task = Counter((r["task_id"], r["data_date"]) for r in after if r["status"] == "success")
    assert all(per_task[k] == 1 for k in done_before), "a task recorded as successful was redone"
    assert not ({k[0] for k in done_before} & set(store.states(run_id)))
    assert {k[0] for k in per_task} == {k[0] for k in done_before} | set(store.states(run_id))


def test_overlapping_enqueue_is_refused_naming_the_running_run(env: dict) -> None:
    first = enqueue(env)  # no worker: it stays running
    result = cli(env, "enqueue", "--start", "2023-11-05", "--end", "2023-11-09", "--phases", "3")
    assert result.exit_code == 2
    assert first in result.output
    assert cli(env, "cancel", first).exit_code == 0
    assert enqueue(env) != first  # the locks went with the cancel


@pytest.mark.slow
def test_cancel_mid_run_stops_new_work_and_keeps_triggers_until_released(env: dict) -> None:
    env["worker"](concurrency=1)
    run_id = enqueue(env, "--batch", "1", selection=OPENING)
    store = env["store"]
    triggers = Triggers(store.client)
    assert not triggers.is_enabled("phase3->phase4") and not triggers.is_enabled("phase4->phase5")
    wait_run(store, run_id, timeout=60, until=lambda s: Counter(s.states(run_id).values())[TaskStatus.success] >= 3)
    result = cli(env, "cancel", run_id)
    assert result.exit_code == 0, result.output
    cancelled_at = store.get_run(run_id).cancelled_at  # type: ignore[union-attr]
    time.sleep(4)
    late = {t: at for t, at in store.started_at(run_id).items() if at > cancelled_at}
    assert not late, f"tasks started after cancel: {late}"
    status = json.loads(cli(env, "status", run_id, "--json").stdout)
    assert status["status"] == "cancelled"
    assert status["counts"]["cancelled"] > 0 and status["counts"]["pending"] == 0
    # Phase 3 was left incomplete: the live Phase 4 (and 5) triggers stay off until told otherwise.
    assert not triggers.is_enabled("phase3->phase4") and not triggers.is_enabled("phase4->phase5")
    assert cli(env, "cancel", run_id, "--settle", "0", "--release-triggers").exit_code == 0
    assert triggers.is_enabled("phase3->phase4") and triggers.is_enabled("phase4->phase5")
    # Every task that finished before or during the cancel is in the durable run history, and every
    # cancelled one too (their table wants a row, with its started_at, for what never ran).
    finished = {t for t, s in store.states(run_id).items() if s in (TaskStatus.success, TaskStatus.failed)}
    cancelled = {t for t, s in store.states(run_id).items() if s is TaskStatus.cancelled}
    rows = history(env["wh"], run_id)
    assert finished and finished == {r["task_id"] for r in rows if r["status"] != "cancelled"}
    assert cancelled == {r["task_id"] for r in rows if r["status"] == "cancelled"}
    assert all(r["started_at"] is not None for r in rows)


def test_resume_after_the_queue_was_lost_runs_every_unfinished_task(env: dict) -> None:
    store = env["store"]
    run_id = enqueue(env, "--batch", "1", selection=OPENING)  # no worker yet: the first window sits in the queue
    status = json.loads(cli(env, "status", run_id, "--json").stdout)
    assert status["status"] == "running" and status["counts"]["pending"] == status["total"]
    assert {p["trigger"] for p in status["trigger_pauses"]} == {"phase3->phase4", "phase4->phase5"}
    assert store.client.delete("celery") == 1  # the broker queue is gone; run state is intact
    result = cli(env, "resume", run_id)
    assert result.exit_code == 0 and f"resumed {status['total']}" in result.output, result.output
    env["worker"]()
    run = wait_run(store, run_id, timeout=60)
    assert run.status is RunStatus.succeeded and run.seq == 1
    assert set(store.attempts(run_id).values()) == {1}


def test_a_running_worker_sees_seasons_loaded_after_it_started(env: dict) -> None:
    """More raw data loaded while the worker keeps running: the next run checks against it.

    A worker that kept the schedule it read at its first task would not know 2021-22's season
    start, so the week's lookback windows would look complete and the run would succeed with
    Phase 3 from 2021-10-19 never run (found by following the execution guide after the demo).
    """
    from pipelines.nba.sample import load_sample

    env["worker"]()
    first = enqueue(env, "--phases", "3", "--start", "2023-10-24", "--end", "2023-10-26")
    assert wait_run(env["store"], first, timeout=60).status is RunStatus.succeeded  # the worker read the schedule
    with DuckDBWarehouse(env["wh"], hold=False) as wh:
        load_sample(wh, seasons=("2021-22",))
    run_id = enqueue(env, selection=("--start", "2021-11-01", "--end", "2021-11-07", "--phases", "3,4"))
    run = wait_run(env["store"], run_id, timeout=60)
    assert run.status is RunStatus.failed
    results = env["store"].results(run_id)
    gaps = [r["error_message"] for r in results.values() if r.get("error_category") == "dependency_gap"]
    assert gaps and any("player_game_summary@2021-10-19" in m for m in gaps), results
