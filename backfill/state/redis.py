"""Run state in Redis. Key templates live on the class (rq-style) so every key is findable.

The client is passed in (never a global), and the few multi-step updates that must not
interleave with a cancel or a second run are Lua scripts, so they are atomic in one round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import redis

from backfill.planner import Task
from backfill.planner.model import TaskKey
from backfill.state.base import (
    Begin,
    BeginDecision,
    RunRecord,
    RunStatus,
    StateStore,
    TaskStatus,
    now,
    partition_statuses,
)

# Refuse if any lock is held by another run (return its id), else take all of them.
_ACQUIRE = """
for i = 1, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder and holder ~= ARGV[1] then return holder end
end
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end
return false
"""
# Release only the locks this run holds.
_RELEASE = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 0
"""
# KEYS: run, states, started, attempts, tasks; ARGV: task id, timestamp.
# Returns decision, attempt, and (when it runs) the task JSON, the run's pipeline and noop flag,
# so a worker needs one round trip before it starts and cannot race a cancel.
_BEGIN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown', 0} end
local run = redis.call('HMGET', KEYS[1], 'status', 'pipeline', 'noop')
if run[1] == 'cancelled' then return {'cancelled', 0} end
local st = redis.call('HGET', KEYS[2], ARGV[1])
if st and st ~= 'pending' and st ~= 'running' then return {'finished', 0} end
local task = redis.call('HGET', KEYS[5], ARGV[1])
if not task then return {'unknown', 0} end
redis.call('HSET', KEYS[2], ARGV[1], 'running')
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
local n = redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
return {'run', n, task, run[2], run[3]}
"""

# KEYS: guard; ARGV: now, stale_after ('' = never), ttl. Free, or stale and not done -> take it.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v and (v == 'done' or ARGV[2] == '' or tonumber(ARGV[1]) - tonumber(v) <= tonumber(ARGV[2])) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""


class RedisStateStore(StateStore):
    prefix = "backfill"
    runs_key = "backfill:runs"
    run_key = "backfill:run:{0}"
    tasks_key = "backfill:run:{0}:tasks"
    states_key = "backfill:run:{0}:states"
    results_key = "backfill:run:{0}:results"
    started_key = "backfill:run:{0}:started"
    attempts_key = "backfill:run:{0}:attempts"
    waves_key = "backfill:run:{0}:waves:{1}"
    guard_key = "backfill:run:{0}:guard:{1}"
    queued_key = "backfill:run:{0}:queued"
    parts_key = "backfill:run:{0}:parts"
    lock_key = "backfill:lock:{0}:{1}"
    guard_ttl_seconds = 7 * 24 * 3600

    def __init__(self, client: redis.Redis) -> None:
        # Built with decode_responses=True (see from_url), so every reply is a str; the Any
        # keeps redis-py's bytes-or-str stubs from leaking into every caller.
        self.client: Any = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._begin = client.register_script(_BEGIN)
        self._claim = client.register_script(_CLAIM)

    @classmethod
    def from_url(cls, url: str) -> RedisStateStore:
        """One client per process; `rediss://` and passwords pass straight through."""
        return cls(redis.Redis.from_url(url, decode_responses=True, health_check_interval=30))

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, record: RunRecord, tasks: Sequence[Task]) -> None:
        rid = record.run_id
        pipe = self.client.pipeline()
        for key in (self.tasks_key, self.states_key, self.results_key, self.started_key, self.attempts_key,
                    self.parts_key):
            pipe.delete(key.format(rid))
        pipe.hset(self.run_key.format(rid), mapping=record.to_mapping())
        if tasks:
            pipe.hset(self.tasks_key.format(rid), mapping={t.id: json.dumps(t.to_json()) for t in tasks})
            pipe.hset(self.states_key.format(rid), mapping={t.id: TaskStatus.pending.value for t in tasks})
        pipe.zadd(self.runs_key, {rid: record.created_at})
        pipe.execute()

    def get_run(self, run_id: str) -> RunRecord | None:
        data = self.client.hgetall(self.run_key.format(run_id))
        return RunRecord.from_mapping(data) if data else None

    def update_run(self, run_id: str, **fields: Any) -> None:
        mapping = {k: (v.value if isinstance(v, RunStatus) else ("1" if v is True else "0" if v is False else str(v)))
                   for k, v in fields.items() if v is not None}
        self.client.hset(self.run_key.format(run_id), mapping=mapping)

    def list_runs(self) -> list[RunRecord]:
        ids = self.client.zrevrange(self.runs_key, 0, 199)
        pipe = self.client.pipeline()
        for rid in ids:
            pipe.hgetall(self.run_key.format(rid))
        return [RunRecord.from_mapping(d) for d in pipe.execute() if d]

    # -- locks ---------------------------------------------------------------------------
    def _lock_keys(self, keys: Iterable[TaskKey]) -> list[str]:
        return sorted({self.lock_key.format(p, d.isoformat()) for p, d in keys})

    def acquire_locks(self, run_id: str, keys: Iterable[TaskKey]) -> str | None:
        holder = self._acquire(keys=self._lock_keys(keys), args=[run_id])
        return str(holder) if holder else None

    def release_locks(self, run_id: str, keys: Iterable[TaskKey]) -> None:
        lock_keys = self._lock_keys(keys)
        if lock_keys:
            self._release(keys=lock_keys, args=[run_id])

    # -- waves and tasks -----------------------------------------------------------------
    def set_waves(self, run_id: str, seq: int, waves: Sequence[Sequence[str]]) -> None:
        key = self.waves_key.format(run_id, seq)
        pipe = self.client.pipeline()
        pipe.delete(key)
        if waves:
            pipe.rpush(key, *[json.dumps(list(w)) for w in waves])
        pipe.execute()

    def get_wave(self, run_id: str, seq: int, wave: int) -> list[str]:
        raw = self.client.lindex(self.waves_key.format(run_id, seq), wave)
        return list(json.loads(raw)) if raw else []

    def tasks(self, run_id: str) -> dict[str, Task]:
        return {k: Task.from_json(json.loads(v)) for k, v in self.client.hgetall(self.tasks_key.format(run_id)).items()}

    def states(self, run_id: str) -> dict[str, TaskStatus]:
        return {k: TaskStatus(v) for k, v in self.client.hgetall(self.states_key.format(run_id)).items()}

    def set_states(self, run_id: str, states: Mapping[str, TaskStatus]) -> None:
        if states:
            self.client.hset(self.states_key.format(run_id), mapping={k: v.value for k, v in states.items()})

    def begin_task(self, run_id: str, task_id: str) -> Begin:
        keys = [self.run_key.format(run_id), self.states_key.format(run_id), self.started_key.format(run_id),
                self.attempts_key.format(run_id), self.tasks_key.format(run_id)]
        out = self._begin(keys=keys, args=[task_id, repr(now())])
        if out[0] != "run":
            return Begin(BeginDecision(out[0]), 0)
        return Begin(BeginDecision.run, int(out[1]), Task.from_json(json.loads(out[2])), out[3] or "", out[4] == "1")

    def tasks_by_id(self, run_id: str, task_ids: Sequence[str]) -> dict[str, Task]:
        if not task_ids:
            return {}
        raw = self.client.hmget(self.tasks_key.format(run_id), list(task_ids))
        return {i: Task.from_json(json.loads(r)) for i, r in zip(task_ids, raw, strict=True) if r}

    def results_by_id(self, run_id: str, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not task_ids:
            return {}
        raw = self.client.hmget(self.results_key.format(run_id), list(task_ids))
        return {i: json.loads(r) for i, r in zip(task_ids, raw, strict=True) if r}

    def finish_task(self, run_id: str, task_id: str, status: TaskStatus, result: Mapping[str, Any]) -> None:
        pipe = self.client.pipeline()
        pipe.hset(self.results_key.format(run_id), task_id, json.dumps(dict(result), default=str))
        pipe.hset(self.states_key.format(run_id), task_id, status.value)
        task = self.task(run_id, task_id)
        if task is not None:
            parts = partition_statuses(status, result, task.dates)
            pipe.hset(self.parts_key.format(run_id),
                      mapping={f"{task.processor}@{d}": s for d, s in parts.items()})
        pipe.execute()

    def partition_states(self, run_id: str, keys: Sequence[TaskKey]) -> dict[TaskKey, str]:
        keys = list(keys)
        if not keys:
            return {}
        raw = self.client.hmget(self.parts_key.format(run_id), [f"{p}@{d.isoformat()}" for p, d in keys])
        return {k: v for k, v in zip(keys, raw, strict=True) if v}

    def results(self, run_id: str) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in self.client.hgetall(self.results_key.format(run_id)).items()}

    def started_at(self, run_id: str) -> dict[str, float]:
        return {k: float(v) for k, v in self.client.hgetall(self.started_key.format(run_id)).items()}

    def attempts(self, run_id: str) -> dict[str, int]:
        return {k: int(v) for k, v in self.client.hgetall(self.attempts_key.format(run_id)).items()}

    # -- guards and queued celery ids ----------------------------------------------------
    def claim(self, run_id: str, name: str, stale_after: float | None = None) -> bool:
        args: list[str | int] = [repr(now()), "" if stale_after is None else repr(float(stale_after)),
                                 self.guard_ttl_seconds]
        return bool(self._claim(keys=[self.guard_key.format(run_id, name)], args=args))

    def complete(self, run_id: str, name: str) -> None:
        self.client.set(self.guard_key.format(run_id, name), "done", ex=self.guard_ttl_seconds)

    def is_complete(self, run_id: str, name: str) -> bool:
        return bool(self.client.get(self.guard_key.format(run_id, name)) == "done")

    def unclaim(self, run_id: str, name: str) -> None:
        self.client.delete(self.guard_key.format(run_id, name))

    def task(self, run_id: str, task_id: str) -> Task | None:
        raw = self.client.hget(self.tasks_key.format(run_id), task_id)
        return Task.from_json(json.loads(raw)) if raw else None

    def add_queued(self, run_id: str, celery_ids: Sequence[str]) -> None:
        if celery_ids:
            self.client.sadd(self.queued_key.format(run_id), *celery_ids)

    def queued(self, run_id: str) -> list[str]:
        return sorted(self.client.smembers(self.queued_key.format(run_id)))
