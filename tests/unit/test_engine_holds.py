"""What holds a run, on the in-memory store with the engine's in-process worker: a pause by hand
keeps everything and starts nothing, the watchdog keeps its trigger pauses renewed meanwhile, and
resume finishes the run with every task run once."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill import engine
from backfill.settings import Settings
from backfill.state import MemoryStateStore, RunStatus, TaskStatus
from tests.support.clock import ManualClock
from tests.unit.engine_support import InProcessWorker, RecordingDispatcher, RecordingTriggers, new_record, small_plan


@pytest.fixture
def store() -> MemoryStateStore:
    return MemoryStateStore(ManualClock())


def test_pause_starts_nothing_keeps_the_triggers_and_resume_finishes_every_task_once(
        store: MemoryStateStore, tmp_path: Path) -> None:
    plan = small_plan(tmp_path)
    settings = Settings(dispatch_window=4)
    worker = InProcessWorker(store, RecordingDispatcher(), settings, lambda: None, RecordingTriggers())
    run_id = engine.start_run(store, worker.dispatcher, plan, new_record(plan), worker.triggers, settings).run_id
    for _ in range(3):
        worker.finish(*worker.begin())  # type: ignore[misc]
    running = worker.begin()  # mid-flight when the pause comes
    assert running is not None
    run = engine.pause(store, run_id, "cli:me@host", "stop for the night")
    assert run.status is RunStatus.paused and run.paused_by == "cli:me@host" and run.pause_kind == "manual"
    before = len(worker.began())
    worker.drain()  # queued messages start nothing: their tasks go back to the ready set
    assert len(worker.began()) == before and worker.log[-1][0] == "skip:paused"
    assert store.pump(run_id, 10) == [] and list(store.inflight(run_id)) == [running[2].id]
    worker.finish(*running)  # the running task still settles
    assert engine.stall(store, run_id, 0.0) is None, "a paused run is never stalled"
    assert engine.keep_triggers(store, run_id, worker.triggers, settings, force=True) == ["phase3->phase4"]
    assert worker.triggers is not None and worker.triggers.paused() == {"phase3->phase4"}
    info = engine.progress(store, run_id)
    assert info is not None and info["status"] == "paused" and info["eta_seconds"] is None
    assert info["paused"]["reason"] == "stop for the night"
    assert engine.sweep(store, worker.dispatcher, settings, lambda: None, worker.triggers)["healed"] == 0

    engine.resume(store, worker.dispatcher, run_id, worker.triggers, settings)
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded
    assert set(store.states(run_id).values()) == {TaskStatus.success}
    began = worker.began()
    assert len(began) == len(set(began)) == len(plan), "every task ran once"
    assert worker.triggers.paused() == set(), "released when the run ended"
