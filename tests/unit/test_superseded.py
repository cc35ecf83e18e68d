"""`runs` marks a failed or partial run superseded once newer runs succeeded every partition it
left undone (on the in-memory store: the rule reads run state only)."""

from __future__ import annotations

import datetime as dt

from backfill.planner.model import Task
from backfill.state import MemoryStateStore, RunRecord, RunStatus, TaskStatus
from backfill.superseded import superseded_by

DAY = dt.date(2023, 11, 1)


def _task(tid: str, day: dt.date) -> Task:
    return Task(id=tid, processor="player_game_summary", phase=3, season="2023-24", dates=(day,), depends_on=(),
                bootstrap=False, wave=0, estimate_seconds=1.0)


def _run(store: MemoryStateStore, run_id: str, at: float, status: RunStatus,
         states: dict[str, tuple[dt.date, TaskStatus]]) -> None:
    store.create_run(RunRecord(run_id=run_id, pipeline="pipelines/nba", request={}, status=status, created_at=at),
                     [_task(t, d) for t, (d, _) in states.items()])
    store.set_states(run_id, {t: s for t, (_, s) in states.items()})


def test_a_partial_run_is_superseded_once_a_newer_run_succeeds_its_partial_dates() -> None:
    store = MemoryStateStore()
    other = DAY + dt.timedelta(days=1)
    _run(store, "bf-1-partial", 1.0, RunStatus.partial,
         {"a": (DAY, TaskStatus.partial), "b": (other, TaskStatus.success)})
    assert superseded_by(store, store.list_runs()) == {}, "nothing newer yet"
    _run(store, "bf-2-short", 2.0, RunStatus.partial, {"c": (DAY, TaskStatus.partial)})
    assert superseded_by(store, store.list_runs()) == {}, "a newer partial does not make it good"
    _run(store, "bf-3-fill", 3.0, RunStatus.succeeded, {"d": (DAY, TaskStatus.success)})
    assert superseded_by(store, store.list_runs()) == {"bf-1-partial": "bf-3-fill", "bf-2-short": "bf-3-fill"}


def test_a_succeeded_run_is_never_marked() -> None:
    store = MemoryStateStore()
    _run(store, "bf-1-ok", 1.0, RunStatus.succeeded, {"a": (DAY, TaskStatus.success)})
    _run(store, "bf-2-ok", 2.0, RunStatus.succeeded, {"b": (DAY, TaskStatus.success)})
    assert superseded_by(store, store.list_runs()) == {}
