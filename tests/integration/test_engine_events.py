"""The engine's events, on a real Redis state store driven in-process (no worker, no broker).

Observers hear what the engine did, in the order that matters to alerts: every accepted
settle, a season's completion after its last task and before the run's finish, the finish
once, a retry before any retried task is sent; and an observer that raises fails nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from backfill import engine
from backfill.engine import EngineObserver, Observers
from backfill.settings import Settings
from backfill.state import RedisStateStore, RunRecord, RunStatus, TaskStatus
from tests.conftest import RedisServer
from tests.integration.test_engine_dispatch import noop_plan

pytestmark = pytest.mark.integration
SEASONS = ("2001-02", "2000-01")


class SentLog:
    """A Dispatcher that keeps what the engine sent, for the test to run by hand."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, run_id: str, task_ids: Sequence[str], priorities: Sequence[int] | None = None) -> list[str]:
        self.sent += task_ids
        return [f"{run_id}|{t}|x" for t in task_ids]

    def revoke(self, queued_ids: Sequence[str]) -> None:
        pass


class Recorder(EngineObserver):
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    def on_task_settled(self, event: engine.TaskSettled) -> None:
        self.log.append(("settled", event.task_id))

    def on_season_complete(self, event: engine.SeasonComplete) -> None:
        self.log.append(("season", event.season))

    def on_run_finished(self, event: engine.RunFinished) -> None:
        self.log.append(("finished", event.status))

    def on_retry(self, event: engine.RetryStarted) -> None:
        self.log.append(("retry", (event.seq, event.tasks)))


class Broken(EngineObserver):
    def on_task_settled(self, event: engine.TaskSettled) -> None:
        raise RuntimeError("a listener bug")

    def on_season_complete(self, event: engine.SeasonComplete) -> None:
        raise RuntimeError("a listener bug")

    def on_run_finished(self, event: engine.RunFinished) -> None:
        raise RuntimeError("a listener bug")


def drain(store: RedisStateStore, sent: SentLog, run_id: str, observers: Observers, fail: set[str],
          log: list[tuple[str, Any]]) -> None:
    """Run every sent task to its outcome, as a worker would: begin, then settle."""
    while sent.sent:
        task_id = sent.sent.pop(0)
        begin = store.begin_task(run_id, task_id, "test", 30)
        if begin.task is None:
            continue
        status = TaskStatus.failed if task_id in fail else TaskStatus.succeeded
        result = {"task_id": task_id, "status": "failed" if task_id in fail else "success", "noop": True,
                  "attempt": begin.attempt}
        log.append(("sent-settle", task_id))
        done = engine.settle(store, sent, run_id, task_id, begin.attempt, status, result,
                             settings=Settings(), warehouse=lambda: None, task=begin.task,
                             observers=observers)
        assert done.outcome == "ok"


def test_observers_hear_settles_then_each_season_then_the_finish_and_a_broken_one_fails_nothing(
        redis_server: RedisServer) -> None:
    store = RedisStateStore.from_url(redis_server.url)
    plan = noop_plan(2, 2, SEASONS)
    tasks = {t.id: t for t in plan.tasks()}
    failing = next(t.id for t in plan.waves[0] if t.season == "2000-01")
    log: list[tuple[str, Any]] = []
    observers = Observers([Broken(), Recorder(log)])
    sent = SentLog()
    record = RunRecord(run_id=engine.new_run_id(), pipeline="-", request=plan.request.to_json(), noop=True)
    engine.start_run(store, sent, plan, record, observers=observers)
    assert store.get_run(record.run_id).status is RunStatus.running  # type: ignore[union-attr]

    drain(store, sent, record.run_id, observers, {failing}, log)

    blocked = engine.dependents(tasks, [failing])
    settled = [k for h, k in log if h == "settled"]
    assert sorted(settled) == sorted(set(tasks) - blocked)  # every accepted settle, once; blocked ones settle in Redis
    assert [k for h, k in log if h == "settled"] == [k for h, k in log if h == "sent-settle"]
    events = [e for e in log if e[0] != "sent-settle"]
    assert events[-1] == ("finished", RunStatus.failed) and [e for e in events if e[0] == "finished"] == [events[-1]]
    assert sorted(k for h, k in events if h == "season") == sorted(SEASONS)
    for season in SEASONS:
        at = events.index(("season", season))
        last = max(events.index(("settled", t)) for t in settled if tasks[t].season == season)
        assert last < at, (season, events)  # the season is complete only after its last task settled

    engine.retry(store, sent, record.run_id, observers=observers)
    assert sent.sent and log[-1] == ("retry", (1, 1 + len(blocked)))  # told before any retried task ran
    drain(store, sent, record.run_id, observers, set(), log)
    assert log[-1] == ("finished", RunStatus.succeeded)
    assert store.get_run(record.run_id).status is RunStatus.succeeded  # type: ignore[union-attr]


def test_nobody_listening_means_no_season_check() -> None:
    """The engine asks the store whether a season completed only if some observer listens for it."""
    assert not Observers().wants("on_season_complete")
    assert not Observers([EngineObserver()]).wants("on_season_complete")
    assert not Observers([Broken(), engine.HistoryFlusher(Settings())]).wants("on_retry")
    assert Observers([Recorder([])]).wants("on_season_complete")
