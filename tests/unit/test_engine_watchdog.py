"""The engine's watchdog on the in-memory store, time moved by hand: expired leases are re-sent,
stalled runs healed once, a run left open by a failed finish is finished; duplicates count once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from backfill import engine
from backfill.planner import Plan
from backfill.settings import Settings
from backfill.state import MemoryStateStore, RunStatus, TaskStatus
from backfill.warehouse import Warehouse
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.support.clock import ManualClock
from tests.unit.engine_support import FIRST_DAYS, InProcessWorker, RecordingDispatcher, new_record, result, small_plan

SETTINGS = {"dispatch_window": 4, "lease_ttl": 30.0, "stall_after": 30.0}


@pytest.fixture
def store(clock: ManualClock) -> MemoryStateStore:
    return MemoryStateStore(clock)


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return small_plan(tmp_path)


def started(store: MemoryStateStore, plan: Plan) -> tuple[str, InProcessWorker]:
    settings = Settings(**SETTINGS)  # type: ignore[arg-type]
    worker = InProcessWorker(store, RecordingDispatcher(), settings)
    return engine.start_run(store, worker.dispatcher, plan, new_record(plan), settings=settings).run_id, worker


def sweep(store: MemoryStateStore, worker: InProcessWorker,
          warehouse: engine.WarehouseSource = lambda: None) -> dict[str, int]:
    return engine.sweep(store, worker.dispatcher, worker.settings, warehouse)


def test_a_dead_workers_task_is_resent_once_its_lease_expires(store: MemoryStateStore, plan: Plan,
                                                              clock: ManualClock) -> None:
    run_id, worker = started(store, plan)
    begun = worker.begin()  # ... and its worker is SIGKILLed: nothing renews the lease, nothing settles
    assert begun is not None
    message, attempt, task = begun
    clock.advance(29)
    assert sweep(store, worker)["resent"] == 0  # the lease still holds
    assert store.states(run_id)[task.id] is TaskStatus.running
    clock.advance(2)
    assert sweep(store, worker) == {"runs": 1, "resent": 1, "healed": 0, "finished": 0}
    assert [m.task_id for m in worker.dispatcher.queue].count(task.id) == 1
    run = store.get_run(run_id)
    assert run is not None and run.resent == 1 and run.status is RunStatus.running
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded and run.healed == 0
    assert store.attempts(run_id)[task.id] == 2
    late = engine.settle(store, worker.dispatcher, run_id, task.id, attempt, TaskStatus.succeeded,
                         result(task, attempt), settings=worker.settings, warehouse=lambda: None)
    assert late.outcome == "stale"  # the dead attempt's outcome, had it come, counts for nothing


def test_a_renewed_lease_keeps_a_slow_task_from_being_resent(store: MemoryStateStore, plan: Plan,
                                                             clock: ManualClock) -> None:
    """A task slower than its lease, whose worker lives: renewals every ttl/3 keep it, nothing is re-sent."""
    run_id, worker = started(store, plan)
    begun = worker.begin()
    assert begun is not None
    lease = f"backfill:run:{run_id}:lease:{begun[2].id}"
    for _ in range(9):  # 90 s of work
        clock.advance(10)
        assert store.renew_leases({lease: f"{worker.holder}:{begun[1]}"}, worker.settings.lease_ttl) == 1
        assert sweep(store, worker)["resent"] == 0
    worker.finish(*begun)
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded and run.resent == 0 and run.healed == 0
    assert set(store.attempts(run_id).values()) == {1}


def test_a_run_whose_messages_were_lost_is_stalled_then_healed_once(store: MemoryStateStore, plan: Plan,
                                                                   clock: ManualClock) -> None:
    run_id, worker = started(store, plan)
    for _ in range(3):
        worker.finish(*worker.begin())  # type: ignore[misc]
    assert worker.dispatcher.purge() > 0  # `celery purge`: run state still has them in flight
    lost = [t for t, _ in store.inflight(run_id).items()]
    assert sweep(store, worker)["healed"] == 0 and engine.stall(store, run_id, 30) is None
    info = engine.progress(store, run_id, stall_after=30)
    assert info is not None and info["stalled"] is None and info["eta_seconds"] is not None
    clock.advance(29)
    assert sweep(store, worker)["healed"] == 0
    clock.advance(1)
    info = engine.progress(store, run_id, stall_after=30)
    assert info is not None and info["eta_seconds"] is None and info["status"] == "running"
    assert info["stalled"] is not None and "not picked up" in info["stalled"]["reason"]
    sent_before = len(worker.dispatcher.sent)
    assert sweep(store, worker) == {"runs": 1, "resent": 0, "healed": 1, "finished": 0}
    assert sorted(m.task_id for m in worker.dispatcher.sent[sent_before:]) == sorted(lost)
    assert sweep(store, worker)["healed"] == 0  # healed once, not on every pass
    run = store.get_run(run_id)
    assert run is not None and run.healed == 1 and "not picked up" in run.heal_reason
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded and set(store.attempts(run_id).values()) == {1}


def test_a_task_waiting_for_its_retry_is_neither_stalled_nor_done(store: MemoryStateStore, plan: Plan,
                                                                  clock: ManualClock) -> None:
    run_id, worker = started(store, plan)
    worker.dispatcher.purge()
    task_id = next(iter(store.inflight(run_id)))
    attempt = store.begin_task(run_id, task_id, "w:1", 30).attempt
    assert store.release_for_retry(run_id, task_id, attempt, clock() + 120)  # a quota error: back in 2 minutes
    clock.advance(60)
    info = engine.progress(store, run_id, stall_after=30)
    assert info is not None and info["waiting_retry"] == 1 and info["stalled"] is None
    assert info["settled"] == 0 and info["in_flight"] == 4


def test_sweep_finishes_a_run_left_open_by_a_failed_finish(store: MemoryStateStore, tmp_path: Path,
                                                           clock: ManualClock) -> None:
    plan = small_plan(tmp_path, ranges=FIRST_DAYS[-1:])
    warehouse = DuckDBWarehouse(tmp_path / "wh.duckdb")
    reachable = threading.Event()

    def source() -> Warehouse:
        if not reachable.is_set():
            raise ConnectionError("warehouse unreachable")
        return warehouse

    run_id, worker = started(store, plan)
    worker.warehouse = source
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.running and store.open_count(run_id) == 0
    with pytest.raises(ConnectionError):  # still unreachable: the pass fails (the worker's loop logs it)
        sweep(store, worker, source)
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.running and store.active_runs() == [run_id]
    reachable.set()
    assert sweep(store, worker, source) == {"runs": 1, "resent": 0, "healed": 0, "finished": 1}
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded and store.active_runs() == []
    rows = warehouse.query("SELECT count(*) AS n FROM reference.processor_run_history")
    assert rows == [{"n": len(plan)}]
    assert sweep(store, worker, source) == {"runs": 0, "resent": 0, "healed": 0, "finished": 0}


def test_concurrent_deliveries_of_one_outcome_record_it_and_send_its_children_once(
        store: MemoryStateStore, plan: Plan) -> None:
    run_id, worker = started(store, plan)
    begun = worker.begin()
    assert begun is not None
    message, attempt, task = begun
    children = {t.id for t in plan.tasks() if task.id in t.depends_on}
    assert children
    outcomes: list[str] = []
    gate = threading.Barrier(4)

    def deliver() -> None:
        gate.wait()
        outcomes.append(engine.settle(store, worker.dispatcher, run_id, task.id, attempt, TaskStatus.succeeded,
                                      result(task, attempt), settings=worker.settings, warehouse=lambda: None).outcome)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(outcomes) == ["ok", "stale", "stale", "stale"]
    assert store.open_count(run_id) == len(plan) - 1
    sent = [m.task_id for m in worker.dispatcher.sent]
    assert all(sent.count(c) <= 1 for c in children) and len(sent) == len(set(sent))
    assert store.begin_task(run_id, task.id, "again:1", 30).decision.value == "finished"
