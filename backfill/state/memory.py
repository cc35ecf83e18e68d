"""Run state in process memory: the StateStore the engine's unit tests run on.

It keeps the same data the Redis store keeps, in the same shapes (the run record as a hash of
strings, tasks and results as JSON, the ready and in-flight sets ordered by score, then by id,
as a Redis sorted set orders them), and does each of the Redis store's Lua steps
(`backfill.state.scripts`) as one step under a lock, so it behaves like Redis for everything
the engine relies on. `tests/contract/state_contract.py` holds both stores to that.

Time comes from `clock` (seconds since the epoch, like `now`): leases, mutexes and claims expire
by it, and every time the store stamps (a task's start, a settle, a send) is read from it, so a
test can move time on instead of sleeping.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from backfill.planner import Task
from backfill.planner.model import TaskKey
from backfill.state.base import (
    Begin,
    BeginDecision,
    PauseKind,
    RunRecord,
    RunStatus,
    Settled,
    StateStore,
    TaskStatus,
    now,
    partition_statuses,
)

GUARD_TTL_SECONDS = 7 * 24 * 3600.0  # as long as the Redis store keeps a claim


class _Run:
    """Everything the Redis store keeps under `backfill:run:<id>:*`, for one run."""

    def __init__(self) -> None:
        self.tasks: dict[str, str] = {}  # task id -> Task JSON
        self.states: dict[str, str] = {}
        self.results: dict[str, str] = {}  # task id -> result JSON
        self.started: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self.parts: dict[str, str] = {}  # processor@date -> status
        self.remaining: dict[str, int] = {}
        self.children: dict[str, list[str]] = {}
        self.prio: dict[str, float] = {}
        self.ready: dict[str, float] = {}  # a sorted set: id -> score
        self.inflight: dict[str, float] = {}
        self.unflushed: dict[str, float] = {}
        self.blocked_by: dict[str, str] = {}


def _ordered(zset: Mapping[str, float]) -> list[str]:
    """Members by score, then by id: the order of a Redis sorted set."""
    return sorted(zset, key=lambda m: (zset[m], m))


def _flag(value: Any) -> str:
    return value.value if isinstance(value, RunStatus) else ("1" if value is True else "0" if value is False
                                                              else str(value))


class MemoryStateStore(StateStore):
    """The StateStore in a dict; one lock makes every method one atomic step, as each Lua call is."""

    lease_key = "backfill:run:{0}:lease:{1}"  # the lease names a worker renews: the Redis store's keys

    def __init__(self, clock: Callable[[], float] = now) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, str]] = {}  # run id -> the run hash (record fields and `open`)
        self._runs: dict[str, _Run] = {}
        self._created: dict[str, float] = {}  # the runs sorted set: run id -> created_at
        self._active: set[str] = set()
        self._locks: dict[tuple[str, str], str] = {}  # (processor, date) -> holding run id
        self._expiring: dict[str, tuple[str, float]] = {}  # leases, mutexes, claims: key -> (value, expires at)
        self._queued: dict[str, set[str]] = {}

    # -- keys with a time to live -----------------------------------------------------------
    def _get(self, key: str) -> str | None:
        entry = self._expiring.get(key)
        if entry is None:
            return None
        if entry[1] < self.clock():  # like Redis: a key expires once its time is past, not at it
            del self._expiring[key]
            return None
        return entry[0]

    def _set(self, key: str, value: str, ttl: float) -> None:
        self._expiring[key] = (value, self.clock() + ttl)

    def _run(self, run_id: str) -> _Run:
        return self._runs.setdefault(run_id, _Run())

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, record: RunRecord, tasks: Sequence[Task]) -> None:
        with self._lock:
            rid = record.run_id
            self._runs[rid] = run = _Run()
            self._records[rid] = {**record.to_mapping(), "open": "0"}
            for t in tasks:
                run.tasks[t.id] = json.dumps(t.to_json())
                run.states[t.id] = TaskStatus.pending.value
            self._created[rid] = record.created_at

    def schedule(self, run_id: str, tasks: Sequence[Task], priorities: Mapping[str, float]) -> None:
        with self._lock:
            run = self._run(run_id)
            ids = {t.id for t in tasks}
            unsettled = ids | {k for k, v in run.states.items() if not TaskStatus(v).finished}
            children: dict[str, list[str]] = {}
            for raw in run.tasks.values():
                t = Task.from_json(json.loads(raw))
                for d in t.depends_on:
                    children.setdefault(d, []).append(t.id)
            run.children = children
            run.ready = {}
            for t in tasks:
                run.remaining[t.id] = sum(1 for d in set(t.depends_on) if d in unsettled)
                run.prio[t.id] = float(priorities.get(t.id, 0.0))
                run.states[t.id] = TaskStatus.pending.value
                run.inflight.pop(t.id, None)
                run.blocked_by.pop(t.id, None)
                if run.remaining[t.id] == 0:
                    run.ready[t.id] = run.prio[t.id]
            self._records.setdefault(run_id, {})["open"] = str(len(unsettled))
            self._active.add(run_id)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            data = self._records.get(run_id)
            return RunRecord.from_mapping(data) if data and "run_id" in data else None

    def open_count(self, run_id: str) -> int:
        with self._lock:
            return int(self._records.get(run_id, {}).get("open") or 0)

    def update_run(self, run_id: str, **fields: Any) -> None:
        with self._lock:
            self._records.setdefault(run_id, {}).update({k: _flag(v) for k, v in fields.items() if v is not None})

    def list_runs(self) -> list[RunRecord]:
        with self._lock:
            newest = sorted(self._created, key=lambda r: (self._created[r], r), reverse=True)[:200]
            return [RunRecord.from_mapping(self._records[r]) for r in newest if "run_id" in self._records.get(r, {})]

    def active_runs(self) -> list[str]:
        with self._lock:
            return sorted(self._active)

    def deactivate(self, run_id: str) -> None:
        with self._lock:
            self._active.discard(run_id)

    # -- partition locks and named mutexes ----------------------------------------------------
    def acquire_locks(self, run_id: str, keys: Iterable[TaskKey]) -> str | None:
        with self._lock:
            wanted = sorted({(p, d.isoformat()) for p, d in keys})
            for k in wanted:
                holder = self._locks.get(k)
                if holder is not None and holder != run_id:
                    return holder
            for k in wanted:
                self._locks[k] = run_id
            return None

    def release_locks(self, run_id: str, keys: Iterable[TaskKey]) -> None:
        with self._lock:
            for k in {(p, d.isoformat()) for p, d in keys}:
                if self._locks.get(k) == run_id:
                    del self._locks[k]

    def try_lock(self, run_id: str, name: str, ttl: float) -> bool:
        with self._lock:
            key = f"mutex:{run_id}:{name}"
            if self._get(key) is not None:
                return False
            self._set(key, repr(self.clock()), max(1, int(ttl * 1000)) / 1000)
            return True

    def unlock(self, run_id: str, name: str) -> None:
        with self._lock:
            self._expiring.pop(f"mutex:{run_id}:{name}", None)

    # -- tasks --------------------------------------------------------------------------------
    def tasks(self, run_id: str) -> dict[str, Task]:
        with self._lock:
            return {k: Task.from_json(json.loads(v)) for k, v in self._run(run_id).tasks.items()}

    def states(self, run_id: str) -> dict[str, TaskStatus]:
        with self._lock:
            return {k: TaskStatus(v) for k, v in self._run(run_id).states.items()}

    def set_states(self, run_id: str, states: Mapping[str, TaskStatus]) -> None:
        with self._lock:
            self._run(run_id).states.update({k: v.value for k, v in states.items()})

    def begin_task(self, run_id: str, task_id: str, holder: str, lease_ttl: float, takeover: bool = False) -> Begin:
        with self._lock:  # scripts.BEGIN
            record = self._records.get(run_id)
            if record is None:
                return Begin(BeginDecision.unknown, 0)
            if record.get("status") == RunStatus.cancelled.value:
                return Begin(BeginDecision.cancelled, 0)
            run = self._run(run_id)
            state = run.states.get(task_id)
            if state is None:
                return Begin(BeginDecision.unknown, 0)
            if state not in (TaskStatus.pending.value, TaskStatus.running.value):
                return Begin(BeginDecision.finished, 0)
            lease = self.lease_key.format(run_id, task_id)
            if self._get(lease) is not None and not takeover:
                return Begin(BeginDecision.busy, 0)
            if run.remaining.get(task_id, 0) > 0:
                return Begin(BeginDecision.early, 0)
            if record.get("status") == RunStatus.paused.value:  # nothing new starts: back to the ready set
                run.states[task_id] = TaskStatus.pending.value
                run.inflight.pop(task_id, None)
                run.ready[task_id] = run.prio.get(task_id, 0.0)
                return Begin(BeginDecision.paused, 0)
            moment = self.clock()
            attempt = run.attempts[task_id] = run.attempts.get(task_id, 0) + 1
            run.states[task_id] = TaskStatus.running.value
            run.started[task_id] = moment
            self._set(lease, f"{holder}:{attempt}", max(1, int(lease_ttl * 1000)) / 1000)
            run.ready.pop(task_id, None)
            run.inflight[task_id] = moment
            return Begin(BeginDecision.run, attempt, Task.from_json(json.loads(run.tasks[task_id])),
                         record.get("pipeline") or "", record.get("noop") == "1", lease)

    def finish_task(self, run_id: str, task_id: str, attempt: int | None, status: TaskStatus,
                    result: Mapping[str, Any] | None, window: int, blocks: bool, task: Task | None = None
                    ) -> Settled:
        task = task if task is not None and task.id == task_id else self.task(run_id, task_id)
        parts = ({f"{task.processor}@{d}": s for d, s in partition_statuses(status, result or {}, task.dates).items()}
                 if task is not None else {})
        with self._lock:  # scripts.FINISH
            run = self._run(run_id)
            state = run.states.get(task_id)
            if state is None:
                return Settled("unknown")
            if state not in (TaskStatus.pending.value, TaskStatus.running.value):
                return Settled("stale")
            if attempt is not None and (state != TaskStatus.running.value or run.attempts.get(task_id) != attempt):
                return Settled("stale")
            moment = self.clock()
            if result is not None:
                run.results[task_id] = json.dumps(dict(result), default=str)
            run.states[task_id] = status.value
            run.parts.update(parts)
            run.inflight.pop(task_id, None)
            run.ready.pop(task_id, None)
            self._expiring.pop(self.lease_key.format(run_id, task_id), None)
            run.unflushed[task_id] = moment
            settled = 1 + (self._block(run, task_id, moment) if blocks else self._release(run, task_id))
            record = self._records.setdefault(run_id, {})
            record["open"] = str(int(record.get("open") or 0) - settled)
            record["progress_at"] = repr(moment)
            send = self._pump(run_id, window, moment)
            oldest = min(run.unflushed.values())
            return Settled("ok", int(record["open"]), tuple(send), len(run.unflushed), oldest)

    def _block(self, run: _Run, task_id: str, moment: float) -> int:
        """Block every pending task that depends on `task_id`, transitively; returns how many."""
        blocked = 0
        stack = list(run.children.get(task_id, ()))
        while stack:
            c = stack.pop()
            if run.states.get(c) != TaskStatus.pending.value:
                continue
            run.states[c] = TaskStatus.blocked.value
            run.blocked_by[c] = task_id
            run.ready.pop(c, None)
            run.inflight.pop(c, None)
            run.unflushed[c] = moment
            child = json.loads(run.tasks[c])
            for d in child["dates"]:
                run.parts[f"{child['processor']}@{d}"] = TaskStatus.blocked.value
            blocked += 1
            stack.extend(run.children.get(c, ()))
        return blocked

    def _release(self, run: _Run, task_id: str) -> int:
        """One upstream fewer for each child; those with none left and not yet sent become ready."""
        for c in run.children.get(task_id, ()):
            run.remaining[c] = left = run.remaining.get(c, 0) - 1
            if left <= 0 and run.states.get(c) == TaskStatus.pending.value and c not in run.inflight:
                run.ready[c] = run.prio.get(c, 0.0)
        return 0

    def _pump(self, run_id: str, window: int, moment: float) -> list[str]:
        if self._records.get(run_id, {}).get("status") != RunStatus.running.value:
            return []
        run = self._run(run_id)
        room = window - len(run.inflight)
        if room <= 0:
            return []
        out = _ordered(run.ready)[:room]
        for tid in out:
            del run.ready[tid]
            run.inflight[tid] = moment
        return out

    def release_for_retry(self, run_id: str, task_id: str, attempt: int, due: float) -> bool:
        with self._lock:  # scripts.RELEASE_FOR_RETRY
            run = self._run(run_id)
            if run.states.get(task_id) != TaskStatus.running.value or run.attempts.get(task_id) != attempt:
                return False
            run.states[task_id] = TaskStatus.pending.value
            self._expiring.pop(self.lease_key.format(run_id, task_id), None)
            run.inflight[task_id] = due
            return True

    def pump(self, run_id: str, window: int) -> list[str]:
        with self._lock:
            return self._pump(run_id, window, self.clock())

    def renew_leases(self, leases: Mapping[str, str], ttl: float) -> int:
        with self._lock:  # scripts.RENEW
            renewed = 0
            for key, value in leases.items():
                if self._get(key) == value:
                    self._set(key, value, max(1, int(ttl * 1000)) / 1000)
                    renewed += 1
            return renewed

    def reap(self, run_id: str) -> list[str]:
        with self._lock:  # scripts.REAP
            run = self._run(run_id)
            moment = self.clock()
            out = [t for t in _ordered(run.inflight) if run.states.get(t) == TaskStatus.running.value
                   and self._get(self.lease_key.format(run_id, t)) is None]
            for tid in out:
                run.states[tid] = TaskStatus.pending.value
                run.inflight[tid] = moment
            if out:
                record = self._records.setdefault(run_id, {})
                record["resent"] = str(int(record.get("resent") or 0) + len(out))
            return out

    def inflight(self, run_id: str) -> dict[str, float]:
        with self._lock:
            flight = self._run(run_id).inflight
            return {t: flight[t] for t in _ordered(flight)}

    def ready(self, run_id: str) -> list[str]:
        with self._lock:
            return _ordered(self._run(run_id).ready)

    def live_leases(self, run_id: str) -> int:
        with self._lock:  # scripts.LIVE_LEASES
            return sum(1 for t in self._run(run_id).inflight if self._get(self.lease_key.format(run_id, t)) is not None)

    def mark_sent(self, run_id: str, task_ids: Sequence[str]) -> None:
        with self._lock:
            flight, moment = self._run(run_id).inflight, self.clock()
            for t in task_ids:
                if t in flight:
                    flight[t] = moment

    def unflushed(self, run_id: str) -> dict[str, float]:
        with self._lock:
            pending = self._run(run_id).unflushed
            return {t: pending[t] for t in _ordered(pending)}

    def drop_unflushed(self, run_id: str, written: Mapping[str, float]) -> None:
        with self._lock:  # scripts.DROP_UNFLUSHED
            pending = self._run(run_id).unflushed
            for tid, score in written.items():
                if pending.get(tid) == score:
                    del pending[tid]

    def blocked_by(self, run_id: str, task_ids: Sequence[str]) -> dict[str, str]:
        with self._lock:
            causes = self._run(run_id).blocked_by
            return {i: causes[i] for i in task_ids if causes.get(i)}

    def tasks_by_id(self, run_id: str, task_ids: Sequence[str]) -> dict[str, Task]:
        with self._lock:
            raw = self._run(run_id).tasks
            return {i: Task.from_json(json.loads(raw[i])) for i in task_ids if i in raw}

    def results_by_id(self, run_id: str, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self._lock:
            raw = self._run(run_id).results
            return {i: json.loads(raw[i]) for i in task_ids if i in raw}

    def results(self, run_id: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: json.loads(v) for k, v in self._run(run_id).results.items()}

    def partition_states(self, run_id: str, keys: Sequence[TaskKey]) -> dict[TaskKey, str]:
        with self._lock:
            parts = self._run(run_id).parts
            return {k: parts[f"{k[0]}@{k[1].isoformat()}"] for k in keys if f"{k[0]}@{k[1].isoformat()}" in parts}

    def started_at(self, run_id: str) -> dict[str, float]:
        with self._lock:
            return dict(self._run(run_id).started)

    def attempts(self, run_id: str) -> dict[str, int]:
        with self._lock:
            return dict(self._run(run_id).attempts)

    # -- guards and queued message ids ---------------------------------------------------------
    def claim(self, run_id: str, name: str, stale_after: float | None = None) -> bool:
        with self._lock:  # scripts.CLAIM
            key = f"guard:{run_id}:{name}"
            held = self._get(key)
            moment = self.clock()
            if held is not None and (held == "done" or stale_after is None or moment - float(held) <= stale_after):
                return False
            self._set(key, repr(moment), GUARD_TTL_SECONDS)
            return True

    def complete(self, run_id: str, name: str) -> None:
        with self._lock:
            self._set(f"guard:{run_id}:{name}", "done", GUARD_TTL_SECONDS)

    def unclaim(self, run_id: str, name: str) -> None:
        with self._lock:
            self._expiring.pop(f"guard:{run_id}:{name}", None)

    _PAUSE_RANK = {PauseKind.window: 1, PauseKind.gate: 2, PauseKind.manual: 3}

    def pause_run(self, run_id: str, kind: PauseKind, by: str, reason: str, at: float) -> bool:
        with self._lock:  # scripts.PAUSE
            record = self._records.get(run_id)
            if record is None:
                return False
            status = record.get("status")
            if status == RunStatus.paused.value:
                current = PauseKind(record.get("pause_kind") or PauseKind.window.value)
                if self._PAUSE_RANK[kind] <= self._PAUSE_RANK[current]:
                    return False
            elif status != RunStatus.running.value:
                return False
            record.update(status=RunStatus.paused.value, pause_kind=kind.value, paused_by=by, pause_reason=reason,
                          paused_at=repr(at))
            return True

    def unpause_run(self, run_id: str, kinds: Sequence[PauseKind]) -> bool:
        with self._lock:  # scripts.UNPAUSE
            record = self._records.get(run_id)
            if record is None or record.get("status") != RunStatus.paused.value:
                return False
            if record.get("pause_kind", "") not in {k.value for k in kinds}:
                return False
            record.update(status=RunStatus.running.value, progress_at=repr(float(int(self.clock()))))
            for field in ("paused_at", "paused_by", "pause_kind", "pause_reason"):
                record.pop(field, None)
            return True

    def task(self, run_id: str, task_id: str) -> Task | None:
        with self._lock:
            raw = self._run(run_id).tasks.get(task_id)
            return Task.from_json(json.loads(raw)) if raw else None

    def add_queued(self, run_id: str, celery_ids: Sequence[str]) -> None:
        with self._lock:
            self._queued.setdefault(run_id, set()).update(celery_ids)

    def queued(self, run_id: str) -> list[str]:
        with self._lock:
            return sorted(self._queued.get(run_id, ()))
