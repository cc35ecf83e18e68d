"""Failures the engine must survive: a failing processor, a killed worker, a lost Redis, duplicates, cancel."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from backfill import engine
from backfill.planner import Plan, PlanRequest, Task
from backfill.planner.model import Estimates
from backfill.settings import Settings
from backfill.state import RunRecord, RunStatus, TaskStatus
from backfill.triggers import Triggers
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.integration.engine_harness import REPO, break_on_dates, cli, enqueue, history, wait_run

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_failed_date_blocks_only_its_dependents_and_retry_completes(env: dict, tmp_path: Path) -> None:
    pipeline = tmp_path / "nba"
    shutil.copytree(REPO / "pipelines" / "nba", pipeline)
    sql = pipeline / "sql" / "team_defense_game_summary.sql"
    original = break_on_dates(sql, ["2023-11-03"])
    env["worker"]()
    run_id = enqueue(env, "--pipeline", str(pipeline))
    run = wait_run(env["store"], run_id, timeout=90)
    assert run.status is RunStatus.failed
    states = env["store"].states(run_id)
    tasks = env["store"].tasks(run_id)
    failed = {t for t, s in states.items() if s is TaskStatus.failed}
    results = env["store"].results(run_id)
    assert failed == {"team_defense_game_summary@2023-11-03"}, {t: results[t]["error_message"] for t in failed}
    blocked = {t for t, s in states.items() if s is TaskStatus.blocked}
    assert blocked and blocked == engine.dependents(tasks, failed)
    assert {tasks[t].processor for t in blocked} <= {"team_defense_zone_analysis", "player_composite_factors",
                                                      "ml_feature_store"}
    assert all(s is TaskStatus.succeeded for t, s in states.items() if t not in failed | blocked)
    rows = history(env["wh"], run_id)
    assert {r["task_id"] for r in rows if r["status"] == "blocked"} == blocked

    sql.write_text(original)
    result = cli(env, "retry", run_id)
    assert result.exit_code == 0, result.output
    run = wait_run(env["store"], run_id, timeout=90)
    assert run.status is RunStatus.succeeded
    assert set(env["store"].states(run_id).values()) == {TaskStatus.succeeded}


@pytest.mark.slow
def test_killed_worker_mid_wave_run_completes_without_duplicates(env: dict) -> None:
    first = env["worker"](concurrency=2)
    run_id = enqueue(env)
    store = env["store"]
    wait_run(store, run_id, timeout=60, until=lambda s: (
        Counter(s.states(run_id).values())[TaskStatus.running] > 0
        and Counter(s.states(run_id).values())[TaskStatus.succeeded] > 3))
    first.kill()
    env["worker"](concurrency=2)
    run = wait_run(store, run_id, timeout=90)
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
    run_id = enqueue(env)
    store = env["store"]
    wait_run(store, run_id, timeout=60, until=lambda s: (s.get_run(run_id) or RunRecord("", "", {})).wave >= 2)
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
    if worker.proc.poll() is not None:
        # Celery 5.7's consumer sometimes exits on a lost broker ("Unrecoverable error" while
        # closing the dead connection); in production a supervisor restarts it, as here.
        env["worker"](concurrency=2)
    run = wait_run(store, run_id, timeout=90)
    assert run.status is RunStatus.succeeded
    after = history(env["wh"], run_id)
    per_task = Counter((r["task_id"], r["data_date"]) for r in after if r["status"] == "success")
    assert all(per_task[k] == 1 for k in done_before), "a task recorded as successful was redone"
    assert not ({k[0] for k in done_before} & set(store.states(run_id)))
    assert {k[0] for k in per_task} == {k[0] for k in done_before} | set(store.states(run_id))


def _noop_plan(waves: int, per_wave: int) -> Plan:
    day0 = dt.date(2001, 1, 1)
    out = []
    for w in range(waves):
        out.append(tuple(Task(f"noop{w}@{(day0 + dt.timedelta(days=i)).isoformat()}", f"noop{w}", 0, "x",
                              (day0 + dt.timedelta(days=i),),
                              (f"noop{w - 1}@{(day0 + dt.timedelta(days=i)).isoformat()}",) if w else (),
                              False, w, 0.0) for i in range(per_wave)))
    return Plan(PlanRequest(ranges=((day0, day0),)), tuple(out), Estimates(waves * per_wave, waves, 0, 0, 0, 0, 1), ())


def test_checkpoint_delivered_twice_enqueues_next_wave_once(env: dict) -> None:
    from workers.app import create_app
    from workers.tasks import CeleryDispatcher

    store = env["store"]
    app = create_app(Settings(redis_url=env["redis"].url, warehouse=f"duckdb:///{env['wh']}"))
    plan = _noop_plan(3, 5)
    record = RunRecord(run_id=engine.new_run_id(), pipeline="-", request=plan.request.to_json(), noop=True)
    engine.start_run(store, CeleryDispatcher(app), plan, record)  # no worker yet: wave 0 waits in the queue
    for t in plan.waves[0]:  # wave 0 done, as a worker would record it
        store.begin_task(record.run_id, t.id)
        store.finish_task(record.run_id, t.id, TaskStatus.succeeded, {"noop": True, "attempt": 1})
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda: outcomes.append(engine.checkpoint(
        store, CeleryDispatcher(app), None, record.run_id, 0, 0))) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["duplicate", "duplicate", "duplicate", "next"]
    assert len(store.queued(record.run_id)) == 10  # wave 0 and wave 1, each once
    for _ in range(2):  # and twice more through Celery itself
        app.signature("backfill.checkpoint_wave", args=(record.run_id, 0, 1)).apply_async()
    env["worker"]()
    run = wait_run(store, record.run_id, timeout=60)
    assert run.status is RunStatus.succeeded
    assert len(store.queued(record.run_id)) == 15
    assert set(store.attempts(record.run_id).values()) == {1}


def test_overlapping_enqueue_is_refused_naming_the_running_run(env: dict) -> None:
    first = enqueue(env)  # no worker: it stays running
    result = cli(env, "enqueue", "--start", "2023-11-05", "--end", "2023-11-09", "--phases", "3")
    assert result.exit_code == 2
    assert first in result.output
    assert cli(env, "cancel", first).exit_code == 0
    assert enqueue(env) != first  # the locks went with the cancel


@pytest.mark.slow
def test_cancel_mid_run_stops_new_work_and_resumes_triggers(env: dict) -> None:
    env["worker"](concurrency=1)
    run_id = enqueue(env)
    store = env["store"]
    triggers = Triggers(store.client)
    assert not triggers.is_enabled("phase3->phase4") and not triggers.is_enabled("phase4->phase5")
    wait_run(store, run_id, timeout=60, until=lambda s: Counter(s.states(run_id).values())[TaskStatus.succeeded] >= 3)
    result = cli(env, "cancel", run_id)
    assert result.exit_code == 0, result.output
    cancelled_at = store.get_run(run_id).cancelled_at  # type: ignore[union-attr]
    time.sleep(4)
    late = {t: at for t, at in store.started_at(run_id).items() if at > cancelled_at}
    assert not late, f"tasks started after cancel: {late}"
    status = json.loads(cli(env, "status", run_id, "--json").stdout)
    assert status["status"] == "cancelled"
    assert status["counts"]["cancelled"] > 0 and status["counts"]["pending"] == 0
    assert triggers.is_enabled("phase3->phase4") and triggers.is_enabled("phase4->phase5")
    # Every task that finished before or during the cancel is in the durable run history.
    finished = {t for t, s in store.states(run_id).items() if s in (TaskStatus.succeeded, TaskStatus.failed)}
    recorded = {r["task_id"] for r in history(env["wh"], run_id)}
    assert finished and finished == recorded


def test_resume_after_the_queue_was_lost_runs_every_unfinished_task(env: dict) -> None:
    store = env["store"]
    run_id = enqueue(env)  # no worker yet: wave 0 sits in the broker queue
    status = json.loads(cli(env, "status", run_id, "--json").stdout)
    assert status["status"] == "running" and status["counts"]["pending"] == status["total"]
    assert {p["trigger"] for p in status["trigger_pauses"]} == {"phase3->phase4", "phase4->phase5"}
    assert store.client.delete("celery") == 1  # the broker queue is gone; run state is intact
    result = cli(env, "resume", run_id)
    assert result.exit_code == 0 and "resumed 70" in result.output, result.output
    env["worker"]()
    run = wait_run(store, run_id, timeout=60)
    assert run.status is RunStatus.succeeded and run.seq == 1
    assert set(store.attempts(run_id).values()) == {1}


def test_checkpoint_of_a_worker_that_died_mid_checkpoint_is_finished_by_its_redelivery(env: dict) -> None:
    from workers.app import create_app
    from workers.tasks import CeleryDispatcher

    store = env["store"]
    app = create_app(Settings(redis_url=env["redis"].url, warehouse=f"duckdb:///{env['wh']}"))
    plan = _noop_plan(2, 4)
    record = RunRecord(run_id=engine.new_run_id(), pipeline="-", request=plan.request.to_json(), noop=True)
    engine.start_run(store, CeleryDispatcher(app), plan, record)
    for t in plan.waves[0]:
        store.begin_task(record.run_id, t.id)
        store.finish_task(record.run_id, t.id, TaskStatus.succeeded, {"noop": True, "attempt": 1})
    assert store.claim(record.run_id, "checkpoint:0:0")  # a worker claimed the checkpoint, then was SIGKILLed
    guard = store.guard_key.format(record.run_id, "checkpoint:0:0")
    store.client.set(guard, repr(time.time() - 60))  # ... a visibility timeout ago (10 s in these tests)
    assert engine.checkpoint(store, CeleryDispatcher(app), None, record.run_id, 0, 0) == "duplicate"  # no takeover
    app.signature("backfill.checkpoint_wave", args=(record.run_id, 0, 0)).apply_async()  # the redelivery
    env["worker"]()
    assert wait_run(store, record.run_id, timeout=60).status is RunStatus.succeeded
    assert len(store.queued(record.run_id)) == 8
