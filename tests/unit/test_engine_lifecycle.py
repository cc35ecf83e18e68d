"""The engine's run lifecycle on the in-memory store: start, settle each outcome, bisected batches,
season priority, cancel, retry and resume. No Redis, no Celery: a run of ~40 tasks takes milliseconds.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from backfill import engine
from backfill.errors import BadInput, RunConflict
from backfill.planner import Plan
from backfill.runhistory import RunHistory
from backfill.settings import Settings
from backfill.state import BeginDecision, MemoryStateStore, RunStatus, TaskStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.support.clock import ManualClock
from tests.unit.engine_support import (
    D,
    InProcessWorker,
    RecordingDispatcher,
    RecordingTriggers,
    fails,
    new_record,
    partial,
    result,
    small_plan,
)

HISTORY = "reference.processor_run_history"


@pytest.fixture
def store(clock: ManualClock) -> MemoryStateStore:
    return MemoryStateStore(clock)


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return small_plan(tmp_path)


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(tmp_path / "wh.duckdb")


def started(store: MemoryStateStore, plan: Plan, *, window: int = 4, warehouse: DuckDBWarehouse | None = None,
            **settings: object) -> tuple[str, InProcessWorker]:
    """A run of `plan` started through the engine, and a worker ready to take its messages."""
    s = Settings(dispatch_window=window, **settings)  # type: ignore[arg-type]
    worker = InProcessWorker(store, RecordingDispatcher(), s, (lambda: warehouse), RecordingTriggers())
    record = engine.start_run(store, worker.dispatcher, plan, new_record(plan), worker.triggers, s,
                              observers=worker.observers)
    return record.run_id, worker


def unreachable() -> DuckDBWarehouse:
    raise ConnectionError("warehouse unreachable")


def history_rows(wh: DuckDBWarehouse, run_id: str) -> list[dict[str, object]]:
    """The run's rows in the tool's canonical names (`RunHistory.view_sql`: status = our outcome,
    attempt = retry_attempt); the table itself speaks the users' vocabulary."""
    view = RunHistory(wh, HISTORY).view_sql()
    return wh.query(f"SELECT * FROM ({view}) AS h WHERE run_id = @r ORDER BY task_id, data_date", {"r": run_id})


def test_start_locks_pauses_triggers_and_sends_the_preferred_seasons_roots_first(
        store: MemoryStateStore, plan: Plan, tmp_path: Path) -> None:
    run_id, worker = started(store, plan, window=4)
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.running
    assert (run.total, run.waves, run.seasons) == (len(plan), 3, "2023-24,2022-23,2021-22")
    assert store.open_count(run_id) == len(plan) > 30
    sent = [store.task(run_id, m.task_id) for m in worker.dispatcher.sent]
    assert len(sent) == 4 and all(t is not None and t.season == "2023-24" and not t.depends_on for t in sent)
    assert {m.priority for m in worker.dispatcher.sent} == {0}
    tasks = store.tasks(run_id)
    assert worker.dispatcher.sent_ids() == sorted(worker.dispatcher.sent_ids(), key=lambda t: tasks[t].dates)
    assert worker.triggers is not None and worker.triggers.paused() == {"phase3->phase4"}
    overlap = small_plan(tmp_path, ranges=((D(2023, 10, 22), D(2023, 10, 23)),))
    with pytest.raises(RunConflict, match=run_id):
        engine.start_run(store, worker.dispatcher, overlap, new_record(overlap, "bf-other"))


def test_a_clean_run_sends_each_task_after_its_upstream_settled_and_writes_history_once(
        store: MemoryStateStore, plan: Plan, warehouse: DuckDBWarehouse) -> None:
    run_id, worker = started(store, plan, warehouse=warehouse, history_flush_tasks=10)
    assert worker.drain() == len(plan)
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded and run.finished_at is not None
    assert set(store.states(run_id).values()) == {TaskStatus.success}
    for t in plan.tasks():
        assert all(worker.log.index(("settle", d)) < worker.log.index(("begin", t.id)) for d in t.depends_on)
    assert set(store.attempts(run_id).values()) == {1} and len(worker.dispatcher.sent) == len(plan)
    rows = history_rows(warehouse, run_id)
    assert Counter((r["task_id"], r["data_date"]) for r in rows) == Counter(
        {(t.id, t.dates[0]): 1 for t in plan.tasks()})
    assert {r["status"] for r in rows} == {"success"} and store.unflushed(run_id) == {}
    events = worker.recorder
    assert sorted(events.hooks("task_settled")) == sorted(t.id for t in plan.tasks())
    assert events.hooks("season_complete") == ["2023-24", "2022-23", "2021-22"]  # each once, the preferred first
    assert events.events[-1] == ("run_finished", "succeeded") and len(events.hooks("run_finished")) == 1
    assert worker.triggers is not None and worker.triggers.paused() == set()
    again = engine.start_run(store, worker.dispatcher, plan, new_record(plan, "bf-again"))  # the locks went back
    assert again.status is RunStatus.running


def test_history_is_flushed_in_bulk_before_the_run_ends(store: MemoryStateStore, plan: Plan,
                                                        warehouse: DuckDBWarehouse) -> None:
    run_id, worker = started(store, plan, warehouse=warehouse, history_flush_tasks=5)
    for _ in range(4):
        worker.finish(*worker.begin())  # type: ignore[misc]
    assert not warehouse.table_exists(HISTORY)  # 4 settled: below the threshold, nothing written yet
    worker.finish(*worker.begin())  # type: ignore[misc]
    assert len(history_rows(warehouse, run_id)) == 5 and store.unflushed(run_id) == {}
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.running


def test_a_partial_task_lets_its_dependents_run_and_the_run_ends_partial(
        store: MemoryStateStore, plan: Plan, warehouse: DuckDBWarehouse) -> None:
    short = next(t for t in plan.tasks() if t.processor == "form" and t.season == "2022-23")
    run_id, worker = started(store, plan, warehouse=warehouse)
    worker.outcomes[short.id] = partial
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.partial
    assert engine.dependents(store.tasks(run_id), [short.id])  # it has dependents, and they ran
    states = store.states(run_id)
    assert states[short.id] is TaskStatus.partial  # itself in run state, its dependents released as by a success
    assert {s for t, s in states.items() if t != short.id} == {TaskStatus.success}
    assert engine.partial_tasks(store, run_id) == {short.id}
    info = engine.progress(store, run_id)
    assert info is not None and info["counts"]["partial"] == 1 and info["counts"]["success"] == len(plan) - 1
    assert [p["task_id"] for p in info["partials"]] == [short.id]
    assert store.partition_states(run_id, [(short.processor, short.dates[0])]) == {
        (short.processor, short.dates[0]): "partial"}
    assert {r["task_id"] for r in history_rows(warehouse, run_id) if r["status"] == "partial"} == {short.id}
    del worker.outcomes[short.id]
    assert engine.retry(store, worker.dispatcher, run_id, settings=worker.settings,
                        observers=worker.observers) == 1  # only the partial one
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded and store.attempts(run_id)[short.id] == 2


def test_a_failed_task_blocks_exactly_its_dependents_and_retry_completes_the_run(
        store: MemoryStateStore, plan: Plan, warehouse: DuckDBWarehouse) -> None:
    broken = next(t for t in plan.tasks() if t.processor == "games" and t.dates[0] == D(2022, 10, 22))
    run_id, worker = started(store, plan, warehouse=warehouse)
    worker.outcomes[broken.id] = fails("processor_error", "injected failure")
    worker.drain()
    run = store.get_run(run_id)
    states = store.states(run_id)
    blocked = engine.dependents(store.tasks(run_id), [broken.id])
    assert run is not None and run.status is RunStatus.failed
    assert states[broken.id] is TaskStatus.failed and len(blocked) >= 2
    assert {t for t, s in states.items() if s is TaskStatus.blocked} == blocked
    assert all(s is TaskStatus.success for t, s in states.items() if t not in blocked | {broken.id})
    assert not set(worker.began()) & blocked  # a blocked task is never sent
    rows = {r["task_id"]: r for r in history_rows(warehouse, run_id)}
    assert rows[broken.id]["status"] == "failed" and rows[broken.id]["error_message"] == "injected failure"
    assert all(rows[t]["status"] == "blocked" and rows[t]["error_category"] == "dependency_gap"
               and broken.id in str(rows[t]["error_message"]) for t in blocked)
    info = engine.progress(store, run_id)
    assert info is not None and [f["task_id"] for f in info["failures"]] == [broken.id]

    assert worker.recorder.hooks("run_finished") == ["failed"]
    del worker.outcomes[broken.id]  # the fix
    assert engine.retry(store, worker.dispatcher, run_id, worker.triggers, worker.settings,
                        observers=worker.observers) == len(blocked) + 1
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded and run.seq == 1
    assert set(store.states(run_id).values()) == {TaskStatus.success}
    attempts = store.attempts(run_id)
    assert attempts[broken.id] == 2 and all(attempts[t] == 1 for t in blocked)
    assert worker.recorder.hooks("retry") == ["1"] and worker.recorder.hooks("run_finished") == ["failed", "succeeded"]
    latest = {(r["task_id"], r["attempt"]): r["status"] for r in history_rows(warehouse, run_id)}
    assert latest[(broken.id, 2)] == "success"


def test_a_revoked_task_settles_as_revoked_blocks_its_dependents_and_retries(
        store: MemoryStateStore, plan: Plan, warehouse: DuckDBWarehouse) -> None:
    """What a worker's task_revoked handler does: settle the queued task as revoked, whatever attempt."""
    run_id, worker = started(store, plan, warehouse=warehouse)
    target = next(m for m in worker.dispatcher.queue if engine.dependents(store.tasks(run_id), [m.task_id]))
    worker.dispatcher.queue.remove(target)  # the worker discards the revoked message
    done = engine.settle(store, worker.dispatcher, run_id, target.task_id, None, TaskStatus.revoked, None,
                         settings=worker.settings, warehouse=worker.warehouse, observers=worker.observers)
    assert done.outcome == "ok"
    worker.drain()
    states = store.states(run_id)
    blocked = engine.dependents(store.tasks(run_id), [target.task_id])
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.failed and states[target.task_id] is TaskStatus.revoked
    assert {t for t, s in states.items() if s is TaskStatus.blocked} == blocked
    rows = {r["task_id"]: r["status"] for r in history_rows(warehouse, run_id)}
    assert rows[target.task_id] == "revoked" and all(rows[t] == "blocked" for t in blocked)
    assert engine.retry(store, worker.dispatcher, run_id, settings=worker.settings,
                        observers=worker.observers) == len(blocked) + 1
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded


def test_a_bisected_batch_with_good_dates_releases_its_dependents(store: MemoryStateStore, tmp_path: Path,
                                                                   warehouse: DuckDBWarehouse) -> None:
    """A failed batch whose status_by_date shows written dates does not block: the per-date checks
    of its dependents (which read `partition_states`) fail exactly those reading the bad date."""
    plan = small_plan(tmp_path, ranges=(FIRST_2023,), batch=3)
    batch = next(t for t in plan.tasks() if t.processor == "games" and len(t.dates) == 3)
    bad = batch.dates[1]
    run_id, worker = started(store, plan, warehouse=warehouse)
    by_date = {d: ("failed" if d == bad else "success") for d in batch.dates}
    worker.outcomes[batch.id] = lambda t, a: result(t, a, "failed", by_date=by_date, category="processor_error",
                                                    message=f"bad rows on {bad}")
    worker.drain()
    states = store.states(run_id)
    assert states[batch.id] is TaskStatus.failed
    children = [t for t in plan.tasks() if batch.id in t.depends_on]
    assert children and all(states[c.id] is TaskStatus.success for c in children)  # released, not blocked
    assert TaskStatus.blocked not in states.values()
    assert store.partition_states(run_id, [("games", d) for d in batch.dates]) == {
        ("games", d): s for d, s in by_date.items()}
    rows = {r["data_date"]: r for r in history_rows(warehouse, run_id) if r["task_id"] == batch.id}
    assert {d: r["status"] for d, r in rows.items()} == by_date
    assert rows[bad]["error_message"] == f"bad rows on {bad}" and rows[batch.dates[0]]["error_message"] is None


def test_a_batch_whose_every_date_failed_blocks_its_dependents(store: MemoryStateStore, tmp_path: Path) -> None:
    plan = small_plan(tmp_path, ranges=(FIRST_2023,), batch=3)
    batch = next(t for t in plan.tasks() if t.processor == "games" and len(t.dates) == 3)
    run_id, worker = started(store, plan)
    worker.outcomes[batch.id] = lambda t, a: result(t, a, "failed", by_date={d: "failed" for d in t.dates})
    worker.drain()
    states = store.states(run_id)
    assert {t for t, s in states.items() if s is TaskStatus.blocked} == engine.dependents(plan.task_map(), [batch.id])


@pytest.mark.parametrize("order, first", [("recent-first", "2023-24"), ("chronological", "2021-22")])
def test_the_preferred_season_is_sent_first_and_finishes_first(store: MemoryStateStore, tmp_path: Path,
                                                               order: str, first: str) -> None:
    plan = small_plan(tmp_path, order=order)
    run_id, worker = started(store, plan, window=4)
    ranked = [first, "2022-23", "2023-24" if first == "2021-22" else "2021-22"]
    assert {store.tasks(run_id)[m.task_id].season for m in worker.dispatcher.sent} == {first}
    worker.drain()
    tasks = store.tasks(run_id)
    began = worker.began()
    last = {s: max(i for i, t in enumerate(began) if tasks[t].season == s) for s in ranked}
    assert last[ranked[0]] < last[ranked[1]] < last[ranked[2]]
    # A downstream task of the preferred season, ready late, still jumps the older seasons' queue.
    assert last[ranked[0]] < min(i for i, t in enumerate(began) if tasks[t].season != first and tasks[t].wave == 2)
    levels = {tasks[m.task_id].season: m.priority for m in worker.dispatcher.sent}
    assert levels == {ranked[0]: 0, ranked[1]: 1, ranked[2]: 2}


def test_cancel_stops_new_work_revokes_the_queue_gives_locks_back_and_keeps_triggers_over_incomplete_writes(
        store: MemoryStateStore, plan: Plan, tmp_path: Path, warehouse: DuckDBWarehouse) -> None:
    run_id, worker = started(store, plan, warehouse=warehouse)
    for _ in range(3):
        worker.finish(*worker.begin())  # type: ignore[misc]
    running = worker.begin()  # one task is mid-flight when the cancel comes
    assert running is not None
    queued = store.queued(run_id)
    run = engine.cancel(store, worker.dispatcher, run_id, worker.triggers)
    assert run.status is RunStatus.cancelled and run.cancelled_at is not None
    assert worker.dispatcher.revoked == queued and len(queued) == len(worker.dispatcher.sent)
    # Phase 3 was left half-written: its live trigger stays off, and the watchdog keeps renewing it.
    assert worker.triggers is not None and worker.triggers.paused() == {"phase3->phase4"}
    assert store.active_runs() == [run_id]
    counts = Counter(store.states(run_id).values())
    assert counts[TaskStatus.pending] == 0 and counts[TaskStatus.cancelled] == len(plan) - 4
    engine.cancel(store, worker.dispatcher, run_id, worker.triggers, release_triggers=True)
    assert worker.triggers.paused() == set(), "--release-triggers gives them back"
    assert store.active_runs() == []
    # Messages the broker still delivers start nothing.
    before = len(worker.began())
    worker.drain()
    assert len(worker.began()) == before and ("skip:cancelled", worker.log[-1][1]) == worker.log[-1]
    assert store.pump(run_id, 10) == []
    # The task that was running when the cancel came still records its outcome; history has every settled
    # task, and a row (skipped, outcome cancelled, with a started_at) for each date of a cancelled one.
    worker.finish(*running)
    tasks = plan.task_map()
    cancelled = {t for t, s in store.states(run_id).items() if s is TaskStatus.cancelled}
    assert engine.record_finished(store, warehouse, run_id) == 4 + sum(len(tasks[t].dates) for t in cancelled)
    rows = history_rows(warehouse, run_id)
    assert {r["task_id"] for r in rows if r["status"] == "success"} == {
        t for t, s in store.states(run_id).items() if s is TaskStatus.success}
    assert {r["task_id"] for r in rows if r["status"] == "cancelled"} == cancelled
    assert all(r["started_at"] is not None for r in rows)
    overlap = small_plan(tmp_path, ranges=((D(2023, 10, 20), D(2023, 10, 25)),))
    after = engine.start_run(store, worker.dispatcher, overlap, new_record(overlap, "bf-next"))
    assert after.status is RunStatus.running


def test_retry_refuses_a_running_run_a_clean_run_and_an_unknown_one(store: MemoryStateStore, plan: Plan) -> None:
    run_id, worker = started(store, plan)
    with pytest.raises(BadInput, match="still running"):
        engine.retry(store, worker.dispatcher, run_id)
    worker.drain()
    with pytest.raises(BadInput, match="no failed, blocked, revoked or partial"):
        engine.retry(store, worker.dispatcher, run_id)
    with pytest.raises(BadInput, match="no run bf-nope"):
        engine.retry(store, worker.dispatcher, "bf-nope")
    with pytest.raises(BadInput, match="no run bf-nope"):
        engine.cancel(store, worker.dispatcher, "bf-nope")


def test_a_stale_message_from_before_a_retry_waits_for_its_upstream(store: MemoryStateStore, plan: Plan) -> None:
    broken = next(t for t in plan.tasks() if t.processor == "games" and t.season == "2023-24")
    child = next(t for t in plan.tasks() if broken.id in t.depends_on)
    run_id, worker = started(store, plan)
    worker.outcomes[broken.id] = fails()
    worker.drain()
    del worker.outcomes[broken.id]
    engine.retry(store, worker.dispatcher, run_id, settings=worker.settings, observers=worker.observers)
    assert store.begin_task(run_id, child.id, "old:1", 30).decision is BeginDecision.early
    worker.drain()
    assert store.states(run_id)[child.id] is TaskStatus.success


def test_resume_after_the_queue_was_lost_resends_every_unfinished_task_once(
        store: MemoryStateStore, plan: Plan) -> None:
    run_id, worker = started(store, plan, window=4)
    worker.finish(*worker.begin())  # type: ignore[misc]
    alive = worker.begin()  # its worker lives on and will settle it
    assert alive is not None
    lost = worker.dispatcher.purge()
    assert lost > 0
    pending = {t for t, s in store.states(run_id).items() if s is TaskStatus.pending}
    assert engine.resume(store, worker.dispatcher, run_id, worker.triggers, worker.settings,
                         observers=worker.observers) == len(pending)
    assert alive[2].id not in [m.task_id for m in worker.dispatcher.queue]  # running under a live lease
    worker.finish(*alive)
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded and run.seq == 1
    assert set(store.attempts(run_id).values()) == {1}


def test_resume_after_run_state_was_lost_rebuilds_from_the_ledger_and_skips_recorded_successes(
        store: MemoryStateStore, tmp_path: Path, warehouse: DuckDBWarehouse, clock: ManualClock) -> None:
    """Redis lost everything: the CLI's `resume` rebuilds the run from the request ledger and the run
    history in the warehouse (a real DuckDB file), and only what was not recorded as done runs again."""
    from types import SimpleNamespace

    from backfill.cli.context import CliContext
    from backfill.cli.run import rebuild
    from tests.unit.engine_support import SEASONS, small_spec
    from tests.unit.planner_support import league

    spec = small_spec(tmp_path)
    load_schedule(warehouse, spec.schedule_table, league(SEASONS))
    plan = small_plan(tmp_path)
    settings = Settings(dispatch_window=4, history_flush_tasks=5, pipeline=str(tmp_path))
    worker = InProcessWorker(store, RecordingDispatcher(), settings, lambda: warehouse)
    record = new_record(plan, pipeline=str(tmp_path), history_table=spec.run_history_table)
    engine.record_request(warehouse, record)
    engine.start_run(store, worker.dispatcher, plan, record, settings=settings, observers=worker.observers)
    worker.drain(limit=12)  # 12 settled, 10 of them flushed to the run history (every 5)
    done = {r["task_id"] for r in history_rows(warehouse, record.run_id) if r["status"] == "success"}
    assert len(done) == 10

    fresh = MemoryStateStore(clock)  # Redis restarted empty
    assert fresh.get_run(record.run_id) is None
    again = InProcessWorker(fresh, RecordingDispatcher(), settings, lambda: warehouse)
    session = SimpleNamespace(store=fresh, dispatcher=again.dispatcher, triggers=None, settings=settings,
                              warehouse=lambda: warehouse, observers=again.observers)
    n = rebuild(CliContext(settings), session, record.run_id)  # type: ignore[arg-type]
    assert n == len(plan) - len(done)
    assert not done & set(fresh.tasks(record.run_id))
    again.drain()
    run = fresh.get_run(record.run_id)
    assert run is not None and run.status is RunStatus.succeeded and run.seq == 1
    rows = history_rows(warehouse, record.run_id)
    per_task = Counter(r["task_id"] for r in rows if r["status"] == "success")
    assert set(per_task) == {t.id for t in plan.tasks()} and set(per_task.values()) == {1}
    with pytest.raises(BadInput, match="neither in Redis nor in the warehouse"):
        rebuild(CliContext(settings), session, "bf-never")  # type: ignore[arg-type]


FIRST_2023 = (dt.date(2023, 10, 20), dt.date(2023, 10, 31))


def load_schedule(warehouse: DuckDBWarehouse, table: str, rows: list[dict[str, object]]) -> None:
    from backfill.warehouse import schema

    warehouse.create_table(schema(table, "game_date", ("game_id", "STRING", True), ("game_date", "DATE", True),
                                  ("season", "STRING"), ("season_type", "STRING"), ("home_team", "STRING"),
                                  ("away_team", "STRING")))
    warehouse.insert_rows(table, rows)


def test_resume_of_a_cancelled_run_runs_what_the_cancel_stopped(store: MemoryStateStore, plan: Plan) -> None:
    run_id, worker = started(store, plan)
    for _ in range(5):
        worker.finish(*worker.begin())  # type: ignore[misc]
    engine.cancel(store, worker.dispatcher, run_id, worker.triggers)
    worker.drain()  # messages whose revoke a worker missed: begin refuses each of them
    cancelled = {t for t, s in store.states(run_id).items() if s is TaskStatus.cancelled}
    assert len(cancelled) == len(plan) - 5
    assert engine.resume(store, worker.dispatcher, run_id, worker.triggers, worker.settings,
                         observers=worker.observers) == len(cancelled)
    assert worker.triggers is not None and worker.triggers.paused() == {"phase3->phase4"}
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded and run.seq == 1 and run.cancelled_at is None
    assert set(store.attempts(run_id).values()) == {1}  # the five done before the cancel did not run again


def test_resume_of_a_run_with_nothing_left_finishes_it_and_writes_its_history(
        store: MemoryStateStore, plan: Plan, warehouse: DuckDBWarehouse) -> None:
    run_id, worker = started(store, plan, history_flush_tasks=1000)
    worker.warehouse = unreachable
    worker.drain()  # every task settled, but the finish step could not reach the warehouse
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.running and store.open_count(run_id) == 0
    assert len(store.unflushed(run_id)) == len(plan)  # every history row still to write
    assert engine.resume(store, worker.dispatcher, run_id, worker.triggers, worker.settings,
                         observers=worker.observers, warehouse=lambda: warehouse) == 0
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded
    # The finish that resume ran wrote them (before, it finished with no warehouse: they stayed in Redis).
    assert store.unflushed(run_id) == {}
    assert {r["task_id"] for r in history_rows(warehouse, run_id)} == {t.id for t in plan.tasks()}


def test_one_history_flusher_at_a_time_and_written_rows_are_forgotten(store: MemoryStateStore, plan: Plan,
                                                                       warehouse: DuckDBWarehouse) -> None:
    run_id, worker = started(store, plan, history_flush_tasks=1000)
    for _ in range(3):
        worker.finish(*worker.begin())  # type: ignore[misc]
    assert len(store.unflushed(run_id)) == 3
    assert store.try_lock(run_id, "flush", 60)  # another worker is flushing
    assert engine.flush_history(store, warehouse, run_id) == 0 and not warehouse.table_exists(HISTORY)
    store.unlock(run_id, "flush")
    assert engine.flush_history(store, warehouse, run_id) == 3 and store.unflushed(run_id) == {}
    assert engine.flush_history(store, warehouse, run_id) == 0  # nothing new: nothing written again
    assert len(history_rows(warehouse, run_id)) == 3


def test_progress_counts_each_status_overall_and_per_phase_and_season(store: MemoryStateStore, plan: Plan,
                                                                     clock: ManualClock) -> None:
    run_id, worker = started(store, plan)
    broken = next(t for t in plan.tasks() if t.processor == "games" and t.season == "2023-24")
    worker.outcomes[broken.id] = fails()
    for _ in range(6):
        clock.advance(10)
        worker.finish(*worker.begin())  # type: ignore[misc]
    info = engine.progress(store, run_id)
    assert info is not None
    states = store.states(run_id)
    counts = Counter(s.value for s in states.values())
    assert {k: v for k, v in info["counts"].items() if v} == dict(counts)
    settled = 6 + counts["blocked"]  # the failure's dependents settled with it, as blocked
    assert counts["blocked"] > 0 and info["settled"] == settled and info["total"] == len(plan)
    assert info["done"] == counts["success"] == 5
    assert info["rate_per_minute"] == pytest.approx(5.0)  # 5 done in the 60 s since the start
    assert info["eta_seconds"] == pytest.approx((len(plan) - settled) / (5 / 60))
    groups = {(g["season"], g["phase"]): g for g in info["by_phase_season"]}
    assert sum(g["failed"] + g["blocked"] for g in groups.values()) == counts["failed"] + counts["blocked"]
    assert groups[("2023-24", 3)]["failed"] == 1 and set(groups) == {(s, 3) for s in ("2021-22", "2022-23", "2023-24")}


def test_a_run_whose_only_failures_are_duplicate_keys_ends_partial_everywhere(
        store: MemoryStateStore, plan: Plan, warehouse: DuckDBWarehouse) -> None:
    """Rows written twice under one key fail their dates (`duplicate_key`, never success) and block
    what reads them, but nothing failed in running: the run ends `partial`, and `status`, the
    run-finished event, the run history and a report read from the history alone all say so."""
    from backfill.outcome import ErrorCategory
    from backfill.report.collect import collect_run, history_of

    twice = next(t for t in plan.tasks() if t.processor == "form" and t.season == "2022-23")
    run_id, worker = started(store, plan, warehouse=warehouse)
    worker.outcomes[twice.id] = fails(ErrorCategory.duplicate_key, "2 rows share key (game_date=2022-10-21)")
    worker.drain()
    run = store.get_run(run_id)
    states = store.states(run_id)
    blocked = engine.dependents(store.tasks(run_id), [twice.id])
    assert run is not None and run.status is RunStatus.partial
    assert states[twice.id] is TaskStatus.failed and blocked  # never success; what reads it does not run
    assert {t for t, s in states.items() if s is TaskStatus.blocked} == blocked
    assert worker.recorder.hooks("run_finished") == [RunStatus.partial]
    info = engine.progress(store, run_id)
    assert info is not None and info["status"] == RunStatus.partial
    assert [(f["task_id"], f["category"]) for f in info["failures"]] == [(twice.id, ErrorCategory.duplicate_key)]
    rows = {r["task_id"]: r for r in history_rows(warehouse, run_id)}
    assert rows[twice.id]["status"] == "failed" and rows[twice.id]["error_category"] == ErrorCategory.duplicate_key
    history = history_of(warehouse, HISTORY, [run_id])
    assert collect_run(None, warehouse, HISTORY, run_id, history).status == RunStatus.partial  # Redis gone

    del worker.outcomes[twice.id]  # the SQL fixed: retry reruns the failed task and what it blocked
    assert engine.retry(store, worker.dispatcher, run_id, worker.triggers, worker.settings,
                        observers=worker.observers) == 1 + len(blocked)
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.succeeded


def test_a_failure_in_running_beside_a_duplicate_key_still_fails_the_run(
        store: MemoryStateStore, plan: Plan, warehouse: DuckDBWarehouse) -> None:
    from backfill.outcome import ErrorCategory
    from backfill.report.collect import collect_run, history_of

    twice = next(t for t in plan.tasks() if t.processor == "form" and t.season == "2022-23")
    broken = next(t for t in plan.tasks() if t.processor == "games" and t.season == "2023-24")
    run_id, worker = started(store, plan, warehouse=warehouse)
    worker.outcomes[twice.id] = fails(ErrorCategory.duplicate_key, "2 rows share key")
    worker.outcomes[broken.id] = fails(ErrorCategory.processor_error, "injected failure")
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.failed
    assert worker.recorder.hooks("run_finished") == [RunStatus.failed]
    history = history_of(warehouse, HISTORY, [run_id])
    assert collect_run(None, warehouse, HISTORY, run_id, history).status == RunStatus.failed


def test_a_bisected_batch_with_one_duplicated_date_ends_the_run_partial(store: MemoryStateStore,
                                                                        tmp_path: Path) -> None:
    from backfill.outcome import ErrorCategory, TaskOutcome

    plan = small_plan(tmp_path, batch=3)
    batch = next(t for t in plan.tasks() if t.processor == "trend" and len(t.dates) > 1)  # no dependents
    bad = batch.dates[-1]
    run_id, worker = started(store, plan)

    def one_bad_date(task: object, attempt: int) -> dict[str, object]:
        out = result(batch, attempt, TaskOutcome.failed, category=ErrorCategory.duplicate_key, message="twice",
                     by_date={d: TaskOutcome.failed if d == bad else TaskOutcome.success for d in batch.dates})
        out["issues_by_date"] = {bad.isoformat(): [ErrorCategory.duplicate_key, "2 rows share key"]}
        return out

    worker.outcomes[batch.id] = one_bad_date  # type: ignore[assignment]
    worker.drain()
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.partial
