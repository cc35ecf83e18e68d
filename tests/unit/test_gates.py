"""Season gates in the engine, on the in-memory state store: the bound the pump obeys, a plan the
gate would deadlock refused, and `resume --accept` letting the next season through."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from backfill import engine, gates
from backfill.errors import BadInput
from backfill.planner import Task
from backfill.settings import Settings
from backfill.state import MemoryStateStore, PauseKind, RunRecord, RunStatus, TaskStatus
from tests.support.clock import ManualClock


class Sent:
    """The engine's Dispatcher seam, recording what it would hand to Celery."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def send(self, run_id: str, task_ids: Sequence[str], priorities: Sequence[int] | None = None) -> list[str]:
        self.ids += task_ids
        return [f"{run_id}|{t}|x" for t in task_ids]

    def revoke(self, queued_ids: Sequence[str]) -> None:
        pass


def task(name: str, season: str, *deps: str) -> Task:
    year = int(season[:4])
    return Task(f"{name}@{season}", name, 3, season, (dt.date(year, 11, 1),), deps, False, 0, 1.0)


NEW, OLD = "2023-24", "2022-23"


def armed(tasks: list[Task], order: str = "recent-first") -> RunRecord:
    record = RunRecord(run_id="r1", pipeline="pipelines/nba", request={"order": order, "gate": "validate"})
    record.seasons = ",".join(sorted({t.season for t in tasks}, reverse=order == "recent-first"))
    gates.arm(record, tasks, order)
    return record


def test_the_first_season_only_is_sent_and_accept_lets_the_next_through() -> None:
    tasks = [task("a", NEW), task("b", NEW), task("a", OLD), task("b", OLD)]
    store, sent = MemoryStateStore(ManualClock()), Sent()
    record = armed(tasks)
    assert record.gate_season == NEW and record.gate_rest == 2
    store.create_run(record, tasks)
    store.schedule("r1", tasks, {t.id: engine.priority(t, "recent-first") for t in tasks})
    engine.send(store, sent, "r1", store.pump("r1", 10))
    assert sorted(sent.ids) == ["a@2023-24", "b@2023-24"], "nothing of 2022-23 is sent while the gate holds"
    for t in ("a@2023-24", "b@2023-24"):
        begin = store.begin_task("r1", t, "h", 30)
        store.finish_task("r1", t, begin.attempt, TaskStatus.success, {"status": "success"}, 10, False)
    assert store.pump("r1", 10) == []
    run = store.get_run("r1")
    assert run is not None and gates.due(run, store.open_count("r1")) and gates.season_done(store, run)
    gates.close(store, run, "validation of season 2023-24 failed (nulls): ...", [], 1.0)
    paused = store.get_run("r1")
    assert paused is not None and paused.status is RunStatus.paused and paused.pause_kind == PauseKind.gate.value
    engine.resume(store, sent, "r1", None, Settings(), accept=True)
    after = store.get_run("r1")
    assert after is not None and after.status is RunStatus.running and after.gate_season == ""
    assert "accepted without validation" in after.gate_report
    assert sorted(sent.ids[2:]) == ["a@2022-23", "b@2022-23"], "--accept sends the next season"


def test_a_season_reading_a_season_behind_the_gate_is_refused() -> None:
    tasks = [task("a", OLD), task("b", NEW, "a@2022-23")]
    with pytest.raises(BadInput, match="season the gate would hold back"):
        armed(tasks)
    assert armed(tasks, "chronological").gate_season == OLD, "chronologically the read season comes first"


def test_the_eta_of_a_windowed_run_counts_only_its_windows() -> None:
    """Work left beyond tonight's window waits for tomorrow's: the ETA says so, and a closed window pauses."""
    from backfill.state.base import now
    from backfill.windows import ExecutionWindow

    at = dt.datetime.fromtimestamp(now(), dt.UTC)
    # A window open from a minute ago to two minutes from now, every day, in UTC.
    start, end = (at - dt.timedelta(minutes=1)).time(), (at + dt.timedelta(minutes=2)).time()
    window = ExecutionWindow(start.replace(microsecond=0), end.replace(microsecond=0))
    tasks = [task(f"p{i}", NEW) for i in range(10)]
    store, sent = MemoryStateStore(), Sent()
    record = RunRecord(run_id="r1", pipeline="pipelines/nba", request={"window": window.to_json()},
                       created_at=now() - 600)
    store.create_run(record, tasks)
    store.schedule("r1", tasks, {t.id: 0.0 for t in tasks})
    begin = store.begin_task("r1", tasks[0].id, "h", 30)
    store.finish_task("r1", tasks[0].id, begin.attempt, TaskStatus.success, {"status": "success"}, 0, False)
    info = engine.progress(store, "r1")
    assert info is not None and info["window"]["open"] is True
    # 1 task in 600 s: 9 left need 5,400 s of work, 3 minutes of it tonight, the rest on later days.
    assert info["eta_seconds"] > 20 * 3600, info["eta_seconds"]
    settings = Settings()
    assert engine.apply_window(store, sent, store.get_run("r1"), settings, at + dt.timedelta(minutes=3)) == "paused"
    paused = engine.progress(store, "r1")
    assert paused is not None and paused["status"] == "paused" and paused["eta_seconds"] is None
    assert paused["paused"]["kind"] == "window" and "opens" in paused["paused"]["reason"]
    assert engine.apply_window(store, sent, store.get_run("r1"), settings, at + dt.timedelta(days=1)) == "resumed"
    assert len(sent.ids) == 9, "what was ready is sent when the window opens"
