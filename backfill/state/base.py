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
from backfill.spec import DEFAULT_RUN_HISTORY_TABLE


class TaskStatus(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    blocked = "blocked"
    skipped = "skipped"
    cancelled = "cancelled"
    revoked = "revoked"  # revoked through Celery (CLI, Flower, API): a cancelled kind; `retry` reruns it

    @property
    def finished(self) -> bool:
        return self not in (TaskStatus.pending, TaskStatus.running)


class RunStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"  # finished, with failed or blocked tasks: `retry` picks those up
    partial = "partial"  # finished, nothing failed, but some dates hold less than expected (`gaps` says what)
    cancelled = "cancelled"
    paused = "paused"  # unfinished, nothing new starts: by hand (`backfill pause`), outside its window, or a gate

    @property
    def active(self) -> bool:
        """Not finished: it holds its locks and trigger pauses, and the watchdog looks after it."""
        return self in (RunStatus.running, RunStatus.paused)

    @property
    def dispatching(self) -> bool:
        """New tasks may start (a paused run sends none and refuses queued ones)."""
        return self is RunStatus.running


class PauseKind(StrEnum):
    """Why a run is paused; who may lift it."""

    manual = "manual"  # `backfill pause`: only `backfill resume` lifts it
    window = "window"  # outside its execution window: the watchdog lifts it when the window opens
    gate = "gate"  # a season's validation failed: `retry` after a fix, or `resume --accept`


class BeginDecision(StrEnum):
    """What `begin_task` tells a worker: go ahead, or why not."""

    run = "run"
    cancelled = "cancelled"
    finished = "finished"  # a redelivery of a task that already finished: return its result
    unknown = "unknown"  # the run is not in this store (Redis lost it): do nothing
    busy = "busy"  # another attempt holds a live lease: this delivery is a duplicate
    early = "early"  # an upstream task is unsettled (a stale message from before a retry): not yet
    paused = "paused"  # the run is paused: the task went back to the ready set, to be sent on resume


@dataclass(frozen=True)
class Begin:
    """The answer of `begin_task`; `task`, `pipeline` and `noop` are set only when the decision is `run`."""

    decision: BeginDecision
    attempt: int
    task: Task | None = None
    pipeline: str = ""
    noop: bool = False
    lease: str = ""  # the lease this attempt holds (its key); the worker renews it while the task runs


@dataclass(frozen=True)
class Settled:
    """What recording a task's outcome did, in the same atomic step.

    `outcome` is `ok`, or `stale` when this attempt was not the current one or the task was
    already settled (nothing was recorded or counted). `send` are the tasks that step moved
    from ready to in flight: the caller sends one message each. `open` is how many tasks of
    the run are still unsettled (0: finish the run).
    """

    outcome: str
    open: int = 0
    send: tuple[str, ...] = ()
    unflushed: int = 0
    oldest_unflushed: float | None = None


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
    seq: int = 0  # 0 for the run, +1 for every retry/resume
    wave: int = 0  # unused since dispatch follows dependencies; kept so older records load
    waves: int = 0  # the plan's depth (its waves), for display
    total: int = 0
    alerts: str = "digest"
    strict: bool = True
    noop: bool = False  # benchmark runs: tasks do no warehouse work
    history_table: str = DEFAULT_RUN_HISTORY_TABLE
    progress_at: float | None = None  # the last time a task settled
    resent: int = 0  # tasks re-sent because their lease expired (a worker died)
    healed: int = 0  # times the watchdog healed a stalled run
    healed_at: float | None = None
    heal_reason: str = ""
    seasons: str = ""  # the run's seasons, comma-separated, the preferred first (broker priority)
    paused_at: float | None = None  # set while status is `paused`
    paused_by: str = ""  # who paused it: cli:user@host, `window`, `gate`
    pause_kind: str = ""  # a PauseKind value
    pause_reason: str = ""

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
                   history_table=m.get("history_table", DEFAULT_RUN_HISTORY_TABLE),
                   progress_at=opt("progress_at"), resent=int(m.get("resent", 0) or 0),
                   healed=int(m.get("healed", 0) or 0), healed_at=opt("healed_at"),
                   heal_reason=m.get("heal_reason", ""), seasons=m.get("seasons", ""),
                   paused_at=opt("paused_at"), paused_by=m.get("paused_by", ""), pause_kind=m.get("pause_kind", ""),
                   pause_reason=m.get("pause_reason", ""))


class StateStore(ABC):
    """Live run state. Redis implements it; tests of the engine run against the real Redis one.

    Dispatch follows dependencies: a task is `ready` when all its upstream tasks settled, a
    bounded number of ready tasks are `in flight` (sent to the broker), and settling a task
    releases its children. Every transition a worker makes is one atomic step, so two
    attempts or two watchdogs can never both act.
    """

    @abstractmethod
    def create_run(self, record: RunRecord, tasks: Sequence[Task]) -> None:
        """Store the run record and its tasks, every task `pending` (not yet scheduled)."""

    @abstractmethod
    def schedule(self, run_id: str, tasks: Sequence[Task], priorities: Mapping[str, float]) -> None:
        """Make `tasks` (pending) the run's unsettled set: count each one's unsettled upstream
        tasks, record children, and put those with none into the ready set by priority."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def open_count(self, run_id: str) -> int:
        """Unsettled tasks of the run (kept by the atomic steps; 0 means finish)."""

    @abstractmethod
    def ready(self, run_id: str) -> list[str]: ...

    @abstractmethod
    def update_run(self, run_id: str, **fields: Any) -> None: ...

    @abstractmethod
    def list_runs(self) -> list[RunRecord]: ...

    @abstractmethod
    def active_runs(self) -> list[str]:
        """Runs still running (the watchdog's worklist)."""

    @abstractmethod
    def deactivate(self, run_id: str) -> None: ...

    @abstractmethod
    def acquire_locks(self, run_id: str, keys: Iterable[TaskKey]) -> str | None:
        """Lock every (processor, date) for the run, all or nothing; returns a conflicting holder's run id."""

    @abstractmethod
    def release_locks(self, run_id: str, keys: Iterable[TaskKey]) -> None: ...

    @abstractmethod
    def tasks(self, run_id: str) -> dict[str, Task]: ...

    @abstractmethod
    def states(self, run_id: str) -> dict[str, TaskStatus]: ...

    @abstractmethod
    def set_states(self, run_id: str, states: Mapping[str, TaskStatus]) -> None: ...

    @abstractmethod
    def begin_task(self, run_id: str, task_id: str, holder: str, lease_ttl: float, takeover: bool = False) -> Begin:
        """Atomically: refuse if cancelled/settled/unknown/leased/early, else mark running,
        count the attempt and take the lease (`holder:attempt`, expiring after `lease_ttl`).

        `takeover`: the broker redelivered this message because its consumer is gone (RabbitMQ
        does so at once), so a lease still held by that consumer need not be waited out.
        """

    @abstractmethod
    def finish_task(self, run_id: str, task_id: str, attempt: int | None, status: TaskStatus,
                    result: Mapping[str, Any] | None, window: int, blocks: bool, task: Task | None = None
                    ) -> Settled:
        """Record an outcome and release or block the children, then pump; one atomic step.

        `attempt` None settles whatever attempt is current (a revoke). `blocks`: the
        children and their dependents become `blocked` instead of being released. `task`: the
        worker already has it from `begin_task`, which saves a round trip per task.
        """

    @abstractmethod
    def release_for_retry(self, run_id: str, task_id: str, attempt: int, due: float) -> bool:
        """A transient failure: back to pending (still in flight, due at `due`), lease dropped."""

    @abstractmethod
    def pump(self, run_id: str, window: int) -> list[str]:
        """Move ready tasks into flight up to `window`; the caller sends them."""

    @abstractmethod
    def renew_leases(self, leases: Mapping[str, str], ttl: float) -> int:
        """Extend each lease key whose value is still ours; returns how many were."""

    @abstractmethod
    def reap(self, run_id: str) -> list[str]:
        """Running tasks whose lease expired go back to pending (in flight, to be re-sent)."""

    @abstractmethod
    def inflight(self, run_id: str) -> dict[str, float]:
        """Task id -> when its message was sent (or its retry is due)."""

    @abstractmethod
    def live_leases(self, run_id: str) -> int: ...

    @abstractmethod
    def mark_sent(self, run_id: str, task_ids: Sequence[str]) -> None:
        """Re-sent in-flight tasks get a fresh sent time."""

    @abstractmethod
    def try_lock(self, run_id: str, name: str, ttl: float) -> bool: ...

    @abstractmethod
    def unlock(self, run_id: str, name: str) -> None: ...

    @abstractmethod
    def unflushed(self, run_id: str) -> dict[str, float]:
        """Settled tasks whose run-history rows are not written yet (task id -> settle time)."""

    @abstractmethod
    def drop_unflushed(self, run_id: str, written: Mapping[str, float]) -> None:
        """Forget the written ones (only if not settled again since)."""

    @abstractmethod
    def blocked_by(self, run_id: str, task_ids: Sequence[str]) -> dict[str, str]: ...

    @abstractmethod
    def tasks_by_id(self, run_id: str, task_ids: Sequence[str]) -> dict[str, Task]: ...

    @abstractmethod
    def results_by_id(self, run_id: str, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

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
    def attempts(self, run_id: str) -> dict[str, int]: ...

    @abstractmethod
    def claim(self, run_id: str, name: str, stale_after: float | None = None) -> bool:
        """SETNX-style guard: True once per (run, name), so a duplicate finish does nothing.

        A claim never `complete`d and older than `stale_after` seconds may be taken over: its
        holder died mid-step (a SIGKILLed worker).
        """

    @abstractmethod
    def complete(self, run_id: str, name: str) -> None:
        """Mark a claimed step done for good."""

    @abstractmethod
    def unclaim(self, run_id: str, name: str) -> None:
        """Give a guard back when the guarded step failed, so its retry can do it."""

    @abstractmethod
    def pause_run(self, run_id: str, kind: PauseKind, by: str, reason: str, at: float) -> bool:
        """Atomically: a `running` run becomes `paused` (kind, by, reason, since `at`); True if it did.

        A paused run may be paused again by a stronger kind (manual over window or gate, gate
        over window), which then decides who lifts it. Nothing new is dispatched while paused,
        and `begin_task` returns any queued task to the ready set instead of starting it.
        """

    @abstractmethod
    def unpause_run(self, run_id: str, kinds: Sequence[PauseKind]) -> bool:
        """Atomically: a `paused` run whose pause is one of `kinds` is `running` again; True if it was."""

    @abstractmethod
    def task(self, run_id: str, task_id: str) -> Task | None: ...

    @abstractmethod
    def add_queued(self, run_id: str, celery_ids: Sequence[str]) -> None: ...

    def season_settled(self, run_id: str, seq: int, season: str) -> bool:
        """Whether every task of `season` in the run has settled (sequence `seq`: after a retry
        the answer is about the retried tasks too). Behind the engine's season-complete event.

        This default reads the whole run (fine for small stores); Redis answers in O(1) amortised.
        """
        tasks = self.tasks(run_id)
        states = self.states(run_id)
        return all(states[i].finished for i, t in tasks.items() if t.season == season and i in states)

    @abstractmethod
    def queued(self, run_id: str) -> list[str]: ...
