"""Dispatch through the real broker: its priority levels put the preferred season first.

That a task is sent only once its own upstream tasks settled, and that duplicate deliveries of one
outcome record it once, is proven without Redis or Celery in tests/unit/test_engine_lifecycle.py and
test_engine_watchdog.py, and for the Redis store's Lua steps in tests/contract/state_contract.py.
"""

from __future__ import annotations

import datetime as dt

import pytest

from backfill import engine
from backfill.planner import Plan, PlanRequest, Task
from backfill.planner.model import Estimates
from backfill.settings import Settings
from backfill.state import RunRecord, RunStatus
from tests.integration.engine_harness import wait_run

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
