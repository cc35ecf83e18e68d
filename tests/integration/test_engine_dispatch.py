"""Dependency-driven dispatch: a task is sent when its own upstream tasks settled, never before."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest

from backfill import engine
from backfill.planner import Plan, PlanRequest, Task
from backfill.planner.model import Estimates
from backfill.settings import Settings
from backfill.state import RunRecord, RunStatus, TaskStatus
from tests.integration.engine_harness import OPENING, enqueue, history, wait_run

pytestmark = pytest.mark.integration


def noop_plan(waves: int, per_wave: int, seasons: tuple[str, ...] = ("2000-01",)) -> Plan:
    """`waves` x `per_wave` no-op tasks per season; each depends on its twin of the wave before."""
    day0 = dt.date(2001, 1, 1)
    out: list[tuple[Task, ...]] = []
    for w in range(waves):
        wave = []
        for s in seasons:
            for i in range(per_wave):
                day = day0 + dt.timedelta(days=i)
                dep = (f"noop{w - 1}-{s}@{day.isoformat()}",) if w else ()
                wave.append(Task(f"noop{w}-{s}@{day.isoformat()}", f"noop{w}-{s}", 0, s, (day,), dep, False, w, 0.0))
        out.append(tuple(wave))
    n = sum(len(w) for w in out)
    return Plan(PlanRequest(ranges=((day0, day0),)), tuple(out), Estimates(n, waves, 0, 0, 0, 0, 1), ())


def test_week_run_sends_each_task_after_its_upstream_tasks_settled(env: dict) -> None:
    env["worker"]()
    run_id = enqueue(env, "--batch", "1", selection=OPENING)
    store = env["store"]
    run = wait_run(store, run_id, timeout=90)
    assert run.status is RunStatus.succeeded, Counter(store.states(run_id).values())
    tasks = store.tasks(run_id)
    started = store.started_at(run_id)
    results = store.results(run_id)
    assert len(tasks) >= 70 and len({t.wave for t in tasks.values()}) >= 3
    for t in tasks.values():
        for d in t.depends_on:
            assert results[d]["finished_at"] <= dt.datetime.fromtimestamp(started[t.id], dt.UTC).isoformat(), (t.id, d)
    rows = history(env["wh"], run_id)
    assert Counter((r["task_id"], r["data_date"]) for r in rows) == Counter({(t, tasks[t].dates[0]): 1 for t in tasks})
    assert set(store.attempts(run_id).values()) == {1}


def test_two_deliveries_of_one_outcome_record_and_count_once(env: dict) -> None:
    """Four threads record the same attempt's outcome at once: one records it, the others are stale."""
    from workers.factory import create_app
    from workers.tasks import CeleryDispatcher

    store = env["store"]
    settings = Settings(redis_url=env["redis"].url, warehouse=f"duckdb:///{env['wh']}")
    dispatcher = CeleryDispatcher(create_app(settings))
    plan = noop_plan(2, 3)
    record = RunRecord(run_id=engine.new_run_id(), pipeline="-", request=plan.request.to_json(), noop=True)
    engine.start_run(store, dispatcher, plan, record, settings=settings)  # no worker: messages wait
    first = plan.waves[0][0]
    begin = store.begin_task(record.run_id, first.id, "test:1", 30)
    assert store.begin_task(record.run_id, first.id, "test:2", 30).decision.value == "busy"
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda: outcomes.append(engine.settle(
        store, dispatcher, record.run_id, first.id, begin.attempt, TaskStatus.success,
        {"noop": True, "attempt": begin.attempt}, settings=settings, warehouse=lambda: None).outcome))
        for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["ok", "stale", "stale", "stale"]
    assert store.open_count(record.run_id) == len(plan) - 1
    child = plan.waves[1][0]
    assert child.id in store.inflight(record.run_id)  # released once, sent once
    assert store.begin_task(record.run_id, first.id, "test:3", 30).decision.value == "finished"


def test_recent_season_is_sent_first_and_finishes_first(env: dict) -> None:
    from workers.factory import create_app
    from workers.tasks import CeleryDispatcher

    store = env["store"]
    settings = Settings(redis_url=env["redis"].url, warehouse=f"duckdb:///{env['wh']}", dispatch_window=4)
    plan = noop_plan(3, 6, seasons=("2021-22", "2023-24", "2022-23"))
    record = RunRecord(run_id=engine.new_run_id(), pipeline="-", request=plan.request.to_json(), noop=True)
    engine.start_run(store, CeleryDispatcher(create_app(settings)), plan, record, settings=settings)
    assert {t.split("@")[0] for t in store.inflight(record.run_id)} == {"noop0-2023-24"}
    env["worker"](concurrency=1)
    assert wait_run(store, record.run_id, timeout=60).status is RunStatus.succeeded
    started = store.started_at(record.run_id)
    tasks = store.tasks(record.run_id)
    last = {s: max(started[t] for t in tasks if tasks[t].season == s) for s in ("2021-22", "2022-23", "2023-24")}
    assert last["2023-24"] < min(started[t] for t in tasks if tasks[t].season != "2023-24" and tasks[t].wave == 2)
    assert last["2023-24"] < last["2022-23"] < last["2021-22"]
