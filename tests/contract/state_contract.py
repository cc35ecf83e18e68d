"""The behaviour every StateStore must show, written once and run against each implementation.

A test module subclasses `StateContract` and provides two fixtures: `store`, an empty store,
and `advance`, which lets `seconds` pass for that store (a sleep for Redis, whose keys expire
in real time; a clock moved by hand for the in-memory store). The atomic steps the Redis store
runs as Lua scripts are here step by step: what the engine relies on is the same on both.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator

import pytest

from backfill.planner import Task
from backfill.state import BeginDecision, PauseKind, RunRecord, RunStatus, StateStore, TaskStatus

D1, D2, D3 = (dt.date(2024, 1, d) for d in (10, 11, 12))
Advance = Callable[[float], None]


def task(name: str, *deps: str, dates: tuple[dt.date, ...] = (D1,), season: str = "2023-24", wave: int = 0) -> Task:
    return Task(name, name.split("@")[0], 3, season, dates, deps, False, wave, 1.0)


# a -> b -> d, a -> c -> d, e alone; d waits for both b and c.
GRAPH = (task("a"), task("b", "a", wave=1), task("c", "a", wave=1), task("d", "b", "c", wave=2), task("e"))
PRIORITIES = {"a": 2.0, "b": 1.0, "c": 1.0, "d": 0.0, "e": 5.0}


def record(run_id: str = "r1", **fields: object) -> RunRecord:
    return RunRecord(run_id=run_id, pipeline="pipelines/x", request={"order": "recent-first"}, **fields)  # type: ignore[arg-type]


def start(store: StateStore, tasks: tuple[Task, ...] = GRAPH, run_id: str = "r1",
          priorities: dict[str, float] | None = None, **fields: object) -> str:
    store.create_run(record(run_id, **fields), tasks)
    store.schedule(run_id, tasks, PRIORITIES if priorities is None else priorities)
    return run_id


def settle(store: StateStore, run_id: str, task_id: str, status: TaskStatus = TaskStatus.succeeded,
           result: dict[str, object] | None = None, window: int = 10, blocks: bool = False) -> tuple[str, int]:
    """Begin then finish one task; returns the finish's outcome and the attempt."""
    begin = store.begin_task(run_id, task_id, "host:1", 30)
    assert begin.decision is BeginDecision.run, begin
    done = store.finish_task(run_id, task_id, begin.attempt, status, result or {"status": "success"}, window, blocks)
    return done.outcome, begin.attempt


class StateContract:
    """Subclass this in a `test_*.py` module and provide the `store` and `advance` fixtures."""

    @pytest.fixture
    def store(self) -> Iterator[StateStore]:
        raise NotImplementedError("a contract test module must provide a `store` fixture")

    @pytest.fixture
    def advance(self) -> Advance:
        raise NotImplementedError("a contract test module must provide an `advance` fixture")

    # -- runs ---------------------------------------------------------------------------------
    def test_a_run_round_trips_with_every_task_pending(self, store: StateStore) -> None:
        rec = record(alerts="immediate", strict=False, noop=True, history_table="ds.hist", seasons="2023-24,2022-23",
                     total=5, waves=3)
        store.create_run(rec, GRAPH)
        got = store.get_run("r1")
        assert got == rec
        assert store.tasks("r1") == {t.id: t for t in GRAPH}
        assert store.task("r1", "d") == GRAPH[3] and store.task("r1", "zz") is None
        assert store.states("r1") == {t.id: TaskStatus.pending for t in GRAPH}
        assert store.open_count("r1") == 0 and store.ready("r1") == []  # not scheduled yet
        assert store.get_run("nope") is None

    def test_update_run_sets_fields_and_an_empty_value_clears_an_optional_one(self, store: StateStore) -> None:
        start(store)
        store.update_run("r1", status=RunStatus.failed, finished_at=123.5, seq=2, strict=False, heal_reason="x y")
        run = store.get_run("r1")
        assert run is not None
        assert (run.status, run.finished_at, run.seq, run.strict, run.heal_reason) == (
            RunStatus.failed, 123.5, 2, False, "x y")
        store.update_run("r1", status=RunStatus.running, finished_at="", cancelled_at=None)
        run = store.get_run("r1")
        assert run is not None and run.status is RunStatus.running and run.finished_at is None

    def test_creating_a_run_again_starts_it_afresh(self, store: StateStore) -> None:
        start(store)
        settle(store, "r1", "a")
        store.create_run(record(), GRAPH[:2])
        assert store.states("r1") == {"a": TaskStatus.pending, "b": TaskStatus.pending}
        assert store.results("r1") == {} and store.attempts("r1") == {} and store.unflushed("r1") == {}
        assert store.inflight("r1") == {} and store.ready("r1") == [] and store.open_count("r1") == 0

    def test_runs_are_listed_newest_first_and_active_until_deactivated(self, store: StateStore) -> None:
        for i, created in enumerate((100.0, 300.0, 200.0)):
            start(store, run_id=f"r{i}", created_at=created)
        assert [r.run_id for r in store.list_runs()] == ["r1", "r2", "r0"]
        assert store.active_runs() == ["r0", "r1", "r2"]
        store.deactivate("r1")
        assert store.active_runs() == ["r0", "r2"]

    # -- schedule and pump ------------------------------------------------------------------------
    def test_schedule_readies_the_roots_and_counts_what_is_open(self, store: StateStore) -> None:
        start(store)
        assert store.open_count("r1") == 5
        assert store.ready("r1") == ["a", "e"]  # by priority
        assert store.inflight("r1") == {}

    def test_pump_sends_by_priority_then_id_up_to_the_window(self, store: StateStore) -> None:
        tasks = tuple(task(n) for n in ("x3", "x1", "x2", "y", "z"))
        start(store, tasks, priorities={"x3": 1.0, "x1": 1.0, "x2": 1.0, "y": 0.5, "z": 9.0})
        assert store.pump("r1", 3) == ["y", "x1", "x2"]
        assert store.pump("r1", 3) == []  # the window is full
        assert list(store.inflight("r1")) == ["x1", "x2", "y"]  # sent together: by id
        assert store.ready("r1") == ["x3", "z"]
        assert store.pump("r1", 5) == ["x3", "z"]

    def test_pump_sends_nothing_once_the_run_is_not_running(self, store: StateStore) -> None:
        start(store)
        store.update_run("r1", status=RunStatus.cancelled)
        assert store.pump("r1", 10) == []
        assert store.ready("r1") == ["a", "e"]

    # -- begin ---------------------------------------------------------------------------------
    def test_begin_runs_a_sent_task_counting_the_attempt_and_taking_the_lease(self, store: StateStore) -> None:
        start(store, noop=True)
        store.pump("r1", 10)
        begin = store.begin_task("r1", "a", "host:7", 30)
        assert begin.decision is BeginDecision.run and begin.attempt == 1
        assert begin.task == GRAPH[0] and begin.pipeline == "pipelines/x" and begin.noop is True and begin.lease
        assert store.states("r1")["a"] is TaskStatus.running
        assert store.attempts("r1") == {"a": 1} and set(store.started_at("r1")) == {"a"}
        assert store.live_leases("r1") == 1 and "a" in store.inflight("r1")

    def test_begin_refuses_a_duplicate_while_the_lease_lives_unless_taken_over(self, store: StateStore) -> None:
        start(store)
        assert store.begin_task("r1", "a", "host:1", 30).decision is BeginDecision.run
        assert store.begin_task("r1", "a", "host:2", 30).decision is BeginDecision.busy
        taken = store.begin_task("r1", "a", "host:2", 30, takeover=True)
        assert taken.decision is BeginDecision.run and taken.attempt == 2
        assert store.renew_leases({taken.lease: "host:1:1"}, 30) == 0  # the old holder's lease is gone
        assert store.renew_leases({taken.lease: "host:2:2"}, 30) == 1

    def test_begin_says_early_unknown_finished_and_cancelled(self, store: StateStore) -> None:
        start(store)
        assert store.begin_task("r1", "b", "h", 30).decision is BeginDecision.early  # `a` is unsettled
        assert store.begin_task("r1", "zz", "h", 30).decision is BeginDecision.unknown
        assert store.begin_task("nope", "a", "h", 30).decision is BeginDecision.unknown
        settle(store, "r1", "a")
        assert store.begin_task("r1", "a", "h", 30).decision is BeginDecision.finished
        store.update_run("r1", status=RunStatus.cancelled)
        begin = store.begin_task("r1", "b", "h", 30)
        assert begin.decision is BeginDecision.cancelled and begin.attempt == 0
        assert store.states("r1")["b"] is TaskStatus.pending and "b" not in store.attempts("r1")

    # -- finish: release, block, pump, duplicates ---------------------------------------------
    def test_finish_releases_children_once_all_their_upstream_settled_and_pumps(self, store: StateStore) -> None:
        start(store)
        store.pump("r1", 2)
        begin = store.begin_task("r1", "a", "h", 30)
        done = store.finish_task("r1", "a", begin.attempt, TaskStatus.succeeded, {"status": "success"}, 2, False)
        assert done.outcome == "ok" and done.open == 4
        assert done.send == ("b",)  # window 2 with `e` in flight: room for one of b, c (equal priority: by id)
        assert store.ready("r1") == ["c"] and set(store.inflight("r1")) == {"b", "e"}
        assert done.unflushed == 1 and done.oldest_unflushed is not None
        assert store.live_leases("r1") == 0 and store.states("r1")["a"] is TaskStatus.succeeded
        settle(store, "r1", "b")
        assert "d" not in store.ready("r1") and "d" not in store.inflight("r1")  # still waits for c
        settle(store, "r1", "c")
        assert "d" in store.inflight("r1")
        assert store.begin_task("r1", "d", "h", 30).decision is BeginDecision.run

    def test_finish_of_a_stale_attempt_or_a_settled_task_records_nothing(self, store: StateStore) -> None:
        start(store)
        first = store.begin_task("r1", "a", "h:1", 30)
        again = store.begin_task("r1", "a", "h:2", 30, takeover=True)
        stale = store.finish_task("r1", "a", first.attempt, TaskStatus.failed, {"status": "failed"}, 10, True)
        assert stale.outcome == "stale" and stale.send == ()
        assert store.states("r1")["a"] is TaskStatus.running and store.results("r1") == {}
        assert store.finish_task("r1", "a", again.attempt, TaskStatus.succeeded, {"status": "success"}, 10,
                                 False).outcome == "ok"
        dup = store.finish_task("r1", "a", again.attempt, TaskStatus.succeeded, {"status": "success"}, 10, False)
        assert dup.outcome == "stale" and store.open_count("r1") == 4
        assert store.finish_task("r1", "zz", 1, TaskStatus.succeeded, None, 10, False).outcome == "unknown"

    def test_concurrent_duplicate_settles_release_a_dependent_once(self, store: StateStore) -> None:
        chain = (task("p"), task("q", "p"), task("s", "q"))
        start(store, chain, priorities={})
        begin = store.begin_task("r1", "p", "h", 30)
        outcomes: list[str] = []
        gate = threading.Barrier(6)

        def settle_once() -> None:
            gate.wait()
            outcomes.append(store.finish_task("r1", "p", begin.attempt, TaskStatus.succeeded,
                                              {"status": "success"}, 10, False).outcome)

        threads = [threading.Thread(target=settle_once) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sorted(outcomes) == ["ok"] + ["stale"] * 5
        assert store.open_count("r1") == 2 and list(store.inflight("r1")) == ["q"] and store.ready("r1") == []
        # `s` still waits for `q`: a double release would have counted its upstream down twice.
        assert store.begin_task("r1", "s", "h", 30).decision is BeginDecision.early

    def test_a_blocking_failure_blocks_every_dependent_transitively(self, store: StateStore) -> None:
        start(store)
        outcome, _ = settle(store, "r1", "a", TaskStatus.failed, {"status": "failed"}, blocks=True)
        assert outcome == "ok"
        states = store.states("r1")
        assert {t for t, s in states.items() if s is TaskStatus.blocked} == {"b", "c", "d"}
        assert states["e"] is TaskStatus.pending
        assert store.blocked_by("r1", ["b", "c", "d", "e"]) == {"b": "a", "c": "a", "d": "a"}
        assert store.open_count("r1") == 1  # only `e`
        assert set(store.unflushed("r1")) == {"a", "b", "c", "d"}
        assert store.partition_states("r1", [("b", D1), ("d", D1), ("a", D1), ("e", D1)]) == {
            ("b", D1): "blocked", ("d", D1): "blocked", ("a", D1): "failed"}
        assert store.ready("r1") == [] and list(store.inflight("r1")) == ["e"]

    def test_blocking_leaves_settled_dependents_alone(self, store: StateStore) -> None:
        start(store)
        settle(store, "r1", "a")
        settle(store, "r1", "b")
        settle(store, "r1", "c", TaskStatus.failed, {"status": "failed"}, blocks=True)
        states = store.states("r1")
        assert states["b"] is TaskStatus.succeeded and states["d"] is TaskStatus.blocked
        assert store.blocked_by("r1", ["b", "d"]) == {"d": "c"} and store.open_count("r1") == 1

    def test_a_revoke_settles_whatever_attempt_is_current(self, store: StateStore) -> None:
        start(store)
        store.pump("r1", 10)
        done = store.finish_task("r1", "a", None, TaskStatus.revoked, None, 10, True)  # queued, never begun
        assert done.outcome == "ok" and store.states("r1")["a"] is TaskStatus.revoked
        assert store.results("r1") == {} and "a" not in store.inflight("r1")
        assert store.partition_states("r1", [("a", D1), ("d", D1)]) == {("a", D1): "revoked", ("d", D1): "blocked"}

    def test_partition_states_follow_each_dates_outcome(self, store: StateStore) -> None:
        batch = task("w", dates=(D1, D2, D3))
        start(store, (batch,), priorities={})
        result = {"status": "failed", "status_by_date": {D1.isoformat(): "success", D2.isoformat(): "failed"},
                  "when": D3}
        settle(store, "r1", "w", TaskStatus.failed, result)
        assert store.partition_states("r1", [("w", D1), ("w", D2), ("w", D3)]) == {
            ("w", D1): "success", ("w", D2): "failed", ("w", D3): "failed"}
        assert store.results("r1")["w"]["when"] == D3.isoformat()  # stored as JSON: dates become strings
        assert store.results_by_id("r1", ["w", "zz"]) == {"w": store.results("r1")["w"]}

    def test_a_partial_success_is_recorded_per_date(self, store: StateStore) -> None:
        start(store, (task("w", dates=(D1, D2)),), priorities={})
        settle(store, "r1", "w", TaskStatus.succeeded,
               {"status": "partial", "status_by_date": {D2.isoformat(): "success"}})
        assert store.partition_states("r1", [("w", D1), ("w", D2)]) == {("w", D1): "partial", ("w", D2): "success"}

    # -- retries, leases, reaping -----------------------------------------------------------------
    def test_release_for_retry_puts_the_attempt_back_due_later(self, store: StateStore) -> None:
        start(store)
        begin = store.begin_task("r1", "a", "h", 30)
        assert not store.release_for_retry("r1", "a", begin.attempt + 1, 1e12)
        assert store.release_for_retry("r1", "a", begin.attempt, 4e9)
        assert store.states("r1")["a"] is TaskStatus.pending and store.inflight("r1")["a"] == 4e9
        assert store.live_leases("r1") == 0
        assert not store.release_for_retry("r1", "a", begin.attempt, 4e9)  # no longer running
        again = store.begin_task("r1", "a", "h", 30)  # no lease left to wait for
        assert again.decision is BeginDecision.run and again.attempt == 2

    def test_an_expired_lease_is_reaped_and_its_late_outcome_is_stale(self, store: StateStore,
                                                                       advance: Advance) -> None:
        start(store)
        first = store.begin_task("r1", "a", "dead:1", 1.0)
        kept = store.begin_task("r1", "e", "alive:1", 30)
        assert store.reap("r1") == []
        advance(1.1)
        assert store.live_leases("r1") == 1
        assert store.renew_leases({first.lease: "dead:1:1"}, 30) == 0  # an expired lease is not brought back
        assert store.reap("r1") == ["a"]
        assert store.states("r1")["a"] is TaskStatus.pending and store.states("r1")["e"] is TaskStatus.running
        run = store.get_run("r1")
        assert run is not None and run.resent == 1
        assert store.reap("r1") == []
        second = store.begin_task("r1", "a", "new:1", 30)
        assert second.attempt == 2
        late = store.finish_task("r1", "a", first.attempt, TaskStatus.succeeded, {"status": "success"}, 10, False)
        assert late.outcome == "stale"
        assert store.finish_task("r1", "e", kept.attempt, TaskStatus.succeeded, {"status": "success"}, 10,
                                 False).outcome == "ok"

    def test_a_renewed_lease_outlives_its_first_ttl(self, store: StateStore, advance: Advance) -> None:
        start(store)
        # TTLs of a second or more: a loaded machine pausing the test must not expire a lease early.
        begin = store.begin_task("r1", "a", "h:1", 1.0)
        advance(0.3)
        assert store.renew_leases({begin.lease: "h:1:1", "backfill:run:r1:lease:zz": "x"}, 2.0) == 1
        advance(1.0)  # past the first TTL, within the renewed one
        assert store.reap("r1") == [] and store.live_leases("r1") == 1
        advance(1.2)
        assert store.reap("r1") == ["a"]

    def test_mark_sent_restamps_only_tasks_in_flight(self, store: StateStore, advance: Advance) -> None:
        start(store)
        store.pump("r1", 1)
        before = store.inflight("r1")["a"]
        advance(0.05)
        store.mark_sent("r1", ["a", "e"])
        flight = store.inflight("r1")
        assert set(flight) == {"a"} and flight["a"] > before

    # -- locks, mutexes, claims ------------------------------------------------------------------
    def test_partition_locks_are_all_or_nothing_and_released_by_their_holder(self, store: StateStore) -> None:
        keys = [("p", D1), ("p", D2)]
        assert store.acquire_locks("r1", keys) is None
        assert store.acquire_locks("r1", keys) is None  # the holder again
        assert store.acquire_locks("r2", [("p", D3), ("p", D2)]) == "r1"
        assert store.acquire_locks("r3", [("p", D3)]) is None  # r2 took nothing
        store.release_locks("r2", keys)  # not r2's: nothing happens
        assert store.acquire_locks("r2", [("p", D1)]) == "r1"
        store.release_locks("r1", keys)
        assert store.acquire_locks("r2", keys) is None

    def test_a_named_mutex_excludes_until_unlocked_or_expired(self, store: StateStore, advance: Advance) -> None:
        assert store.try_lock("r1", "flush", 30)
        assert not store.try_lock("r1", "flush", 30)
        assert store.try_lock("r1", "heal", 0.15) and store.try_lock("r2", "flush", 30)
        store.unlock("r1", "flush")
        assert store.try_lock("r1", "flush", 30)
        advance(0.3)
        assert store.try_lock("r1", "heal", 30)

    def test_a_claim_is_taken_once_and_taken_over_only_when_stale(self, store: StateStore, advance: Advance) -> None:
        assert store.claim("r1", "finish:0")
        assert not store.claim("r1", "finish:0") and not store.claim("r1", "finish:0", stale_after=10)
        advance(0.2)
        assert store.claim("r1", "finish:0", stale_after=0.1)  # its holder died mid-step
        store.complete("r1", "finish:0")
        advance(0.2)
        assert not store.claim("r1", "finish:0", stale_after=0.1)  # done is done
        store.unclaim("r1", "finish:0")
        assert store.claim("r1", "finish:0")
        assert store.claim("r1", "finish:1") and store.claim("r2", "finish:0")

    # -- unflushed history, queued ids, plain reads ---------------------------------------------
    def test_drop_unflushed_forgets_only_what_did_not_settle_again(self, store: StateStore, advance: Advance) -> None:
        start(store)
        settle(store, "r1", "a")
        settle(store, "r1", "e")
        written = store.unflushed("r1")
        assert list(written) == ["a", "e"]
        advance(0.05)
        store.schedule("r1", [GRAPH[4]], PRIORITIES)  # `e` again (a retry), settled after the read
        settle(store, "r1", "e")
        store.drop_unflushed("r1", written)
        left = store.unflushed("r1")
        assert list(left) == ["e"] and left["e"] > written["e"]

    def test_schedule_again_recounts_only_unsettled_upstream(self, store: StateStore) -> None:
        start(store)
        settle(store, "r1", "a")
        settle(store, "r1", "b", TaskStatus.failed, {"status": "failed"}, blocks=True)
        assert store.states("r1")["d"] is TaskStatus.blocked
        store.update_run("r1", status=RunStatus.failed)
        # a retry of b and d: d waits for b only (c is unsettled too, and still counts).
        store.update_run("r1", status=RunStatus.running)
        store.schedule("r1", [GRAPH[1], GRAPH[3]], PRIORITIES)
        assert store.states("r1")["d"] is TaskStatus.pending and store.blocked_by("r1", ["d"]) == {}
        assert store.open_count("r1") == 4  # b, d, and c and e never settled
        assert store.ready("r1") == ["b"] and set(store.inflight("r1")) == {"c", "e"}
        assert store.begin_task("r1", "d", "h", 30).decision is BeginDecision.early
        settle(store, "r1", "b")
        settle(store, "r1", "c")
        assert store.begin_task("r1", "d", "h", 30).decision is BeginDecision.run

    def test_set_states_queued_ids_and_reads_by_id(self, store: StateStore) -> None:
        start(store)
        store.set_states("r1", {"a": TaskStatus.cancelled, "e": TaskStatus.skipped})
        assert store.states("r1")["a"] is TaskStatus.cancelled and store.states("r1")["e"] is TaskStatus.skipped
        store.add_queued("r1", ["r1|b|2", "r1|a|1"])
        store.add_queued("r1", ["r1|a|1"])
        store.add_queued("r1", [])
        assert store.queued("r1") == ["r1|a|1", "r1|b|2"] and store.queued("r2") == []
        assert store.tasks_by_id("r1", ["d", "zz"]) == {"d": GRAPH[3]}
        assert store.tasks_by_id("r1", []) == {} and store.results_by_id("r1", []) == {}
        assert store.blocked_by("r1", []) == {} and store.partition_states("r1", []) == {}

    # -- pause --------------------------------------------------------------------------------
    def test_a_paused_run_starts_nothing_and_a_stronger_pause_wins(self, store: StateStore) -> None:
        start(store)
        assert set(store.pump("r1", 1)) == {"a"}  # the first by priority, in flight
        assert store.pause_run("r1", PauseKind.window, "window", "outside 22:00-07:00", 100.0)
        run = store.get_run("r1")
        assert run is not None and run.status is RunStatus.paused and run.pause_kind == "window"
        assert run.paused_at == 100.0 and run.paused_by == "window" and run.pause_reason == "outside 22:00-07:00"
        begin = store.begin_task("r1", "a", "host:1", 30)
        assert begin.decision is BeginDecision.paused
        assert store.states("r1")["a"] is TaskStatus.pending and "a" in store.ready("r1")
        assert store.pump("r1", 10) == []  # a paused run sends nothing
        assert not store.pause_run("r1", PauseKind.window, "window", "again", 101.0)  # not stronger
        assert store.pause_run("r1", PauseKind.manual, "cli:me", "night", 102.0)  # manual over window
        assert not store.unpause_run("r1", [PauseKind.window])  # the window may not lift a manual pause
        assert store.unpause_run("r1", [PauseKind.manual])
        run = store.get_run("r1")
        assert run is not None and run.status is RunStatus.running and run.paused_at is None and run.pause_kind == ""
        assert "a" in store.pump("r1", 10)
        assert not store.unpause_run("r1", [PauseKind.manual])  # not paused any more
        store.update_run("r1", status=RunStatus.failed)
        assert not store.pause_run("r1", PauseKind.manual, "cli:me", "late", 103.0)  # a finished run stays finished
