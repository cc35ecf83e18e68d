"""The run-state interface: what the engine needs from live state, whatever holds it.

Statuses are `str` enums so they round-trip through Redis and JSON unchanged. Counters per
status are derived from the task states when asked, never stored, so they cannot drift.
"""

from __future__ import annotations

import datetime as dt
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum, StrEnum
from typing import Any

from backfill.planner import Task
from backfill.planner.model import TaskKey


class TaskStatus(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    blocked = "blocked"
    skipped = "skipped"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (TaskStatus.pending, TaskStatus.running)


class RunStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"  # finished, with failed or blocked tasks: `retry` picks those up
    cancelled = "cancelled"

    @property
    def active(self) -> bool:
        return self is RunStatus.running


class BeginDecision(StrEnum):
    """What `begin_task` tells a worker: go ahead, or why not."""

    run = "run"
    cancelled = "cancelled"
    finished = "finished"  # a redelivery of a task that already finished: return its result
    unknown = "unknown"  # the run is not in this store (Redis lost it): do nothing


@dataclass(frozen=True)
class Begin:
    """The answer of `begin_task`; `task`, `pipeline` and `noop` are set only when the decision is `run`."""

    decision: BeginDecision
    attempt: int
    task: Task | None = None
    pipeline: str = ""
    noop: bool = False


def partition_statuses(status: TaskStatus, result: Mapping[str, Any], dates: Sequence[dt.date]) -> dict[str, str]:
    """Per-date outcome of a settled task: the result's `status_by_date` when it has one (a bisected
    batch), else the task's own status for every date."""
    by_date = result.get("status_by_date") or {}
    default = result.get("status") if status in (TaskStatus.succeeded, TaskStatus.failed) else status.value
    if default not in ("success", "partial", "failed"):
        default = {"succeeded": "success"}.get(str(default), str(default))
    return {d.isoformat(): str(by_date.get(d.isoformat(), default)) for d in dates}


def now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()


@dataclass
class RunRecord:
    """A run as stored: the request and where its pipeline lives, plus progress markers."""

    run_id: str
    pipeline: str
    request: dict[str, Any]
    status: RunStatus = RunStatus.running
    created_at: float = field(default_factory=now)
    finished_at: float | None = None
    cancelled_at: float | None = None
    seq: int = 0  # wave sequence: 0 for the run, +1 for every retry/resume
    wave: int = 0  # current wave in the sequence
    waves: int = 0
    total: int = 0
    alerts: str = "digest"
    strict: bool = True
    noop: bool = False  # benchmark runs: tasks do no warehouse work
    history_table: str = "nba_reference.processor_run_history"

    def to_mapping(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in asdict(self).items():
            if v is None:
                continue
            if k == "request":
                out[k] = json.dumps(v)
            elif isinstance(v, bool):
                out[k] = "1" if v else "0"
            else:
                out[k] = str(v.value if isinstance(v, Enum) else v)
        return out

    @classmethod
    def from_mapping(cls, m: Mapping[str, str]) -> RunRecord:
        def opt(k: str) -> float | None:
            return float(m[k]) if m.get(k) not in (None, "") else None

        return cls(run_id=m["run_id"], pipeline=m["pipeline"], request=json.loads(m["request"]),
                   status=RunStatus(m["status"]), created_at=float(m["created_at"]), finished_at=opt("finished_at"),
                   cancelled_at=opt("cancelled_at"), seq=int(m.get("seq", 0)), wave=int(m.get("wave", 0)),
                   waves=int(m.get("waves", 0)), total=int(m.get("total", 0)), alerts=m.get("alerts", "digest"),
                   strict=m.get("strict", "1") == "1", noop=m.get("noop", "0") == "1",
                   history_table=m.get("history_table", "nba_reference.processor_run_history"))


class StateStore(ABC):
    """Live run state. Redis implements it; tests of the engine run against the real Redis one."""

    @abstractmethod
    def create_run(self, record: RunRecord, tasks: Sequence[Task]) -> None:
        """Store the run record and its tasks, every task `pending`."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def update_run(self, run_id: str, **fields: Any) -> None: ...

    @abstractmethod
    def list_runs(self) -> list[RunRecord]: ...

    @abstractmethod
    def acquire_locks(self, run_id: str, keys: Iterable[TaskKey]) -> str | None:
        """Lock every (processor, date) for the run, all or nothing; returns a conflicting holder's run id."""

    @abstractmethod
    def release_locks(self, run_id: str, keys: Iterable[TaskKey]) -> None: ...

    @abstractmethod
    def set_waves(self, run_id: str, seq: int, waves: Sequence[Sequence[str]]) -> None: ...

    @abstractmethod
    def get_wave(self, run_id: str, seq: int, wave: int) -> list[str]: ...

    @abstractmethod
    def tasks(self, run_id: str) -> dict[str, Task]: ...

    @abstractmethod
    def states(self, run_id: str) -> dict[str, TaskStatus]: ...

    @abstractmethod
    def set_states(self, run_id: str, states: Mapping[str, TaskStatus]) -> None: ...

    @abstractmethod
    def begin_task(self, run_id: str, task_id: str) -> Begin:
        """Atomically: refuse if cancelled/finished/unknown, else mark running and count the attempt."""

    @abstractmethod
    def tasks_by_id(self, run_id: str, task_ids: Sequence[str]) -> dict[str, Task]: ...

    @abstractmethod
    def results_by_id(self, run_id: str, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    @abstractmethod
    def finish_task(self, run_id: str, task_id: str, status: TaskStatus, result: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def results(self, run_id: str) -> dict[str, dict[str, Any]]: ...

    @abstractmethod
    def partition_states(self, run_id: str, keys: Sequence[TaskKey]) -> dict[TaskKey, str]:
        """What this run wrote per (processor, date) so far: success, partial, failed, blocked, revoked.

        The defensive checks read it for upstream partitions written earlier in the same run,
        before the run history has them (history is flushed in bulk).
        """

    @abstractmethod
    def started_at(self, run_id: str) -> dict[str, float]: ...

    @abstractmethod
    def claim(self, run_id: str, name: str, stale_after: float | None = None) -> bool:
        """SETNX-style guard: True once per (run, name), so duplicate callbacks do nothing.

        A claim never `complete`d and older than `stale_after` seconds may be taken over: its
        holder died mid-step (a SIGKILLed worker), and its redelivered message must finish it.
        """

    @abstractmethod
    def complete(self, run_id: str, name: str) -> None:
        """Mark a claimed step done for good."""

    @abstractmethod
    def is_complete(self, run_id: str, name: str) -> bool: ...

    @abstractmethod
    def unclaim(self, run_id: str, name: str) -> None:
        """Give a guard back when the guarded step failed, so its retry can do it."""

    @abstractmethod
    def task(self, run_id: str, task_id: str) -> Task | None: ...

    @abstractmethod
    def add_queued(self, run_id: str, celery_ids: Sequence[str]) -> None: ...

    @abstractmethod
    def queued(self, run_id: str) -> list[str]: ...
