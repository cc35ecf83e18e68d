"""Run state in Redis. Key templates live on the class (rq-style) so every key is findable.

The client is passed in (never a global). Every step a worker takes on a task is one Lua
script (`backfill.state.scripts`), so it is atomic in one round trip: starting a task,
recording its outcome together with releasing or blocking its children and pumping the
ready set, reaping expired leases.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry

from backfill.planner import Task
from backfill.planner.model import TaskKey
from backfill.state import scripts
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

log = logging.getLogger(__name__)

# What a Redis restart or failover looks like to a client: no answer (ConnectionError, which
# BusyLoadingError is too, or TimeoutError), or a primary demoted to a replica that refuses every
# write with READONLY (Memorystore, ElastiCache and Sentinel failovers and switchovers). Workers
# retry these as an outage (through_redis_outage below); the CLI exits 3 on them.
OUTAGE_ERRORS: tuple[type[redis.RedisError], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ReadOnlyError)
# A READONLY reply leaves redis-py's connection open, on the node that refused: a client that kept
# it would be refused forever after a failover moved the primary (a DNS name or an address now
# pointing elsewhere). Retried by the client itself, the error closes the connection first, so the
# next try dials the URL again: 5 retries over 4-8 s, enough for a switchover, before callers see it.
READONLY_RETRY = Retry(EqualJitterBackoff(cap=2.0, base=0.25), 5, supported_errors=(redis.exceptions.ReadOnlyError,))


# How long a worker keeps retrying its own Redis bookkeeping through an outage (a restarted
# redis-server, a failover, a primary demoted to a read-only replica) before giving up and
# leaving the task to the watchdog.
OUTAGE_BUDGET_SECONDS = 120.0
T = TypeVar("T")


def through_redis_outage(step: Callable[[], T], budget: float = OUTAGE_BUDGET_SECONDS,
                         what: str = "Redis step", errors: tuple[type[Exception], ...] = OUTAGE_ERRORS) -> T:
    """Run a Redis step (or a send to the broker), retrying `errors` for up to `budget` seconds.

    The task's warehouse work is done by then; losing its outcome to a 10-second Redis
    restart or failover would cost a re-run, and retrying through Celery would need the
    broker, which is often the same Redis. The first failure and the recovery are logged, as `what`.
    """
    started = time.monotonic()
    pause = 0.2
    failed: BaseException | None = None
    while True:
        try:
            result = step()
        except errors as exc:
            if failed is None:
                log.warning("%s failed (%s: %s); retrying for up to %.0fs", what, type(exc).__name__, exc, budget)
            failed = exc
            if time.monotonic() - started >= budget:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
        else:
            if failed is not None:
                log.warning("%s went through after %.1fs", what, time.monotonic() - started)
            return result



class RedisStateStore(StateStore):
    prefix = "backfill"
    runs_key = "backfill:runs"
    active_key = "backfill:active"
    run_key = "backfill:run:{0}"
    tasks_key = "backfill:run:{0}:tasks"
    states_key = "backfill:run:{0}:states"
    results_key = "backfill:run:{0}:results"
    started_key = "backfill:run:{0}:started"
    attempts_key = "backfill:run:{0}:attempts"
    parts_key = "backfill:run:{0}:parts"
    remaining_key = "backfill:run:{0}:remaining"  # task -> its unsettled upstream tasks
    children_key = "backfill:run:{0}:children"  # task -> JSON list of the tasks that depend on it
    prio_key = "backfill:run:{0}:prio"  # task -> score in the ready set (lower goes first)
    ready_key = "backfill:run:{0}:ready"  # zset: unsettled tasks whose upstream all settled
    inflight_key = "backfill:run:{0}:inflight"  # zset: sent or running tasks -> sent (or retry due) time
    lease_key = "backfill:run:{0}:lease:{1}"  # a running attempt's lease: host:pid:attempt, with a TTL
    unflushed_key = "backfill:run:{0}:unflushed"  # zset: settled tasks not yet in the run history
    blocked_by_key = "backfill:run:{0}:blocked_by"
    guard_key = "backfill:run:{0}:guard:{1}"
    mutex_key = "backfill:run:{0}:mutex:{1}"
    queued_key = "backfill:run:{0}:queued"
    lock_key = "backfill:lock:{0}:{1}"
    seasons_built_key = "backfill:run:{0}:seasons:{1}:built"  # run, seq: the season lists of that sequence exist
    season_pending_key = "backfill:run:{0}:seasons:{1}:{2}"  # run, seq, season -> list of unsettled task ids
    guard_ttl_seconds = 7 * 24 * 3600
    season_ttl_seconds = 30 * 24 * 3600

    def __init__(self, client: redis.Redis) -> None:
        # Built with decode_responses=True (see from_url), so every reply is a str; the Any
        # keeps redis-py's bytes-or-str stubs from leaking into every caller.
        self.client: Any = client
        self._acquire = client.register_script(scripts.ACQUIRE)
        self._release = client.register_script(scripts.RELEASE)
        self._begin = client.register_script(scripts.BEGIN)
        self._claim = client.register_script(scripts.CLAIM)
        self._finish = client.register_script(scripts.FINISH)
        self._pump = client.register_script(scripts.PUMP)
        self._retry = client.register_script(scripts.RELEASE_FOR_RETRY)
        self._reap = client.register_script(scripts.REAP)
        self._live = client.register_script(scripts.LIVE_LEASES)
        self._renew = client.register_script(scripts.RENEW)
        self._drop = client.register_script(scripts.DROP_UNFLUSHED)
        self._season_settled = client.register_script(scripts.SEASON_SETTLED)
        self._install_seasons = client.register_script(scripts.INSTALL_SEASONS)
        self._pause = client.register_script(scripts.PAUSE)
        self._unpause = client.register_script(scripts.UNPAUSE)

    @classmethod
    def from_url(cls, url: str) -> RedisStateStore:
        """One client per process; `rediss://` and passwords pass straight through. The throttle and
        the trigger pauses of a worker share it, so READONLY_RETRY covers them too."""
        return cls(redis.Redis.from_url(url, decode_responses=True, health_check_interval=30,
                                        socket_connect_timeout=5, socket_timeout=30, retry=READONLY_RETRY))

    def _p(self, run_id: str) -> str:
        return self.run_key.format(run_id)

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, record: RunRecord, tasks: Sequence[Task]) -> None:
        rid = record.run_id
        pipe = self.client.pipeline()
        for key in (self.run_key, self.tasks_key, self.states_key, self.results_key, self.started_key,
                    self.attempts_key, self.parts_key, self.remaining_key, self.children_key, self.prio_key,
                    self.ready_key, self.inflight_key, self.unflushed_key, self.blocked_by_key):
            pipe.delete(key.format(rid))
        pipe.hset(self.run_key.format(rid), mapping={**record.to_mapping(), "open": 0})
        if tasks:
            pipe.hset(self.tasks_key.format(rid), mapping={t.id: json.dumps(t.to_json()) for t in tasks})
            pipe.hset(self.states_key.format(rid), mapping={t.id: TaskStatus.pending.value for t in tasks})
        pipe.zadd(self.runs_key, {rid: record.created_at})
        pipe.execute()

    def schedule(self, run_id: str, tasks: Sequence[Task], priorities: Mapping[str, float]) -> None:
        ids = {t.id for t in tasks}
        states = self.states(run_id)
        unsettled = ids | {k for k, v in states.items() if not v.finished}
        children: dict[str, list[str]] = {}
        for t in self.tasks(run_id).values():
            for d in t.depends_on:
                children.setdefault(d, []).append(t.id)
        remaining = {t.id: sum(1 for d in set(t.depends_on) if d in unsettled) for t in tasks}
        pipe = self.client.pipeline()
        pipe.delete(self.children_key.format(run_id), self.ready_key.format(run_id))
        if children:
            pipe.hset(self.children_key.format(run_id), mapping={k: json.dumps(v) for k, v in children.items()})
        if tasks:
            pipe.hset(self.remaining_key.format(run_id), mapping=remaining)
            pipe.hset(self.prio_key.format(run_id), mapping={t.id: priorities.get(t.id, 0.0) for t in tasks})
            pipe.hset(self.states_key.format(run_id), mapping={t.id: TaskStatus.pending.value for t in tasks})
            pipe.zrem(self.inflight_key.format(run_id), *ids)
            pipe.hdel(self.blocked_by_key.format(run_id), *ids)
            ready = {t.id: priorities.get(t.id, 0.0) for t in tasks if remaining[t.id] == 0}
            if ready:
                pipe.zadd(self.ready_key.format(run_id), ready)
        pipe.hset(self.run_key.format(run_id), "open", len(unsettled))
        pipe.sadd(self.active_key, run_id)
        pipe.execute()

    def get_run(self, run_id: str) -> RunRecord | None:
        data = self.client.hgetall(self.run_key.format(run_id))
        return RunRecord.from_mapping(data) if data and "run_id" in data else None

    def open_count(self, run_id: str) -> int:
        return int(self.client.hget(self.run_key.format(run_id), "open") or 0)

    def set_open(self, run_id: str, value: int) -> None:
        self.client.hset(self.run_key.format(run_id), "open", value)

    def update_run(self, run_id: str, **fields: Any) -> None:
        mapping = {k: (v.value if isinstance(v, RunStatus) else ("1" if v is True else "0" if v is False else str(v)))
                   for k, v in fields.items() if v is not None}
        self.client.hset(self.run_key.format(run_id), mapping=mapping)

    def list_runs(self) -> list[RunRecord]:
        ids = self.client.zrevrange(self.runs_key, 0, 199)
        pipe = self.client.pipeline()
        for rid in ids:
            pipe.hgetall(self.run_key.format(rid))
        return [RunRecord.from_mapping(d) for d in pipe.execute() if d and "run_id" in d]

    def active_runs(self) -> list[str]:
        return sorted(self.client.smembers(self.active_key))

    def deactivate(self, run_id: str) -> None:
        self.client.srem(self.active_key, run_id)

    def activate(self, run_id: str) -> None:
        self.client.sadd(self.active_key, run_id)

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

    def try_lock(self, run_id: str, name: str, ttl: float) -> bool:
        return bool(self.client.set(self.mutex_key.format(run_id, name), repr(now()), nx=True,
                                    px=max(1, int(ttl * 1000))))

    def unlock(self, run_id: str, name: str) -> None:
        self.client.delete(self.mutex_key.format(run_id, name))

    # -- tasks ---------------------------------------------------------------------------
    def tasks(self, run_id: str) -> dict[str, Task]:
        return {k: Task.from_json(json.loads(v)) for k, v in self.client.hgetall(self.tasks_key.format(run_id)).items()}

    def states(self, run_id: str) -> dict[str, TaskStatus]:
        return {k: TaskStatus(v) for k, v in self.client.hgetall(self.states_key.format(run_id)).items()}

    def set_states(self, run_id: str, states: Mapping[str, TaskStatus]) -> None:
        if states:
            self.client.hset(self.states_key.format(run_id), mapping={k: v.value for k, v in states.items()})

    def begin_task(self, run_id: str, task_id: str, holder: str, lease_ttl: float, takeover: bool = False) -> Begin:
        out = self._begin(args=[self._p(run_id), task_id, repr(now()), holder, max(1, int(lease_ttl * 1000)),
                                "1" if takeover else "0"])
        if out[0] != "run":
            return Begin(BeginDecision(out[0]), 0)
        return Begin(BeginDecision.run, int(out[1]), Task.from_json(json.loads(out[2])), out[3] or "",
                     out[4] == "1", out[5])

    def finish_task(self, run_id: str, task_id: str, attempt: int | None, status: TaskStatus,
                    result: Mapping[str, Any] | None, window: int, blocks: bool, task: Task | None = None
                    ) -> Settled:
        task = task if task is not None and task.id == task_id else self.task(run_id, task_id)
        parts = ({f"{task.processor}@{d}": s for d, s in partition_statuses(status, result or {}, task.dates).items()}
                 if task is not None else {})
        out = self._finish(args=[
            self._p(run_id), task_id, "" if attempt is None else str(attempt), status.value,
            "" if result is None else json.dumps(dict(result), default=str), json.dumps(parts) if parts else "{}",
            repr(now()), window, "1" if blocks else "0"])
        if out[0] != "ok":
            return Settled(str(out[0]))
        return Settled("ok", int(out[1]), tuple(out[4:]), int(out[2]), float(out[3]) if out[3] else None)

    def release_for_retry(self, run_id: str, task_id: str, attempt: int, due: float) -> bool:
        return bool(self._retry(args=[self._p(run_id), task_id, str(attempt), repr(due)]))

    def pump(self, run_id: str, window: int) -> list[str]:
        return list(self._pump(args=[self._p(run_id), window, repr(now())]))

    def renew_leases(self, leases: Mapping[str, str], ttl: float) -> int:
        if not leases:
            return 0
        keys = list(leases)
        return int(self._renew(keys=keys, args=[leases[k] for k in keys] + [max(1, int(ttl * 1000))]))

    def reap(self, run_id: str) -> list[str]:
        return list(self._reap(args=[self._p(run_id), repr(now())]))

    def inflight(self, run_id: str) -> dict[str, float]:
        return {k: float(v) for k, v in self.client.zrange(self.inflight_key.format(run_id), 0, -1, withscores=True)}

    def ready(self, run_id: str) -> list[str]:
        return list(self.client.zrange(self.ready_key.format(run_id), 0, -1))

    def live_leases(self, run_id: str) -> int:
        return int(self._live(args=[self._p(run_id)]))

    def mark_sent(self, run_id: str, task_ids: Sequence[str]) -> None:
        if task_ids:
            self.client.zadd(self.inflight_key.format(run_id), {t: now() for t in task_ids}, xx=True)

    def unflushed(self, run_id: str) -> dict[str, float]:
        return {k: float(v) for k, v in self.client.zrange(self.unflushed_key.format(run_id), 0, -1, withscores=True)}

    def drop_unflushed(self, run_id: str, written: Mapping[str, float]) -> None:
        if written:
            args: list[str] = []
            for k, v in written.items():
                args += [k, repr(v)]
            self._drop(keys=[self.unflushed_key.format(run_id)], args=args)

    def blocked_by(self, run_id: str, task_ids: Sequence[str]) -> dict[str, str]:
        if not task_ids:
            return {}
        raw = self.client.hmget(self.blocked_by_key.format(run_id), list(task_ids))
        return {i: r for i, r in zip(task_ids, raw, strict=True) if r}

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

    # -- seasons settled -------------------------------------------------------------------
    def season_settled(self, run_id: str, seq: int, season: str) -> bool:
        """One Lua call per settle: each season keeps a list of its tasks in dispatch-like order
        (built once per sequence), and settled tasks are popped off its head. Both are writes, so a
        primary demoted to a read-only replica refuses them past READONLY_RETRY's few seconds: they
        wait the spell out like the settle before them (the season's digest was lost otherwise)."""
        def step() -> bool:
            if not self.client.exists(self.seasons_built_key.format(run_id, seq)):
                self._install_season_lists(run_id, seq)
            return bool(self._season_settled(keys=[self.season_pending_key.format(run_id, seq, season),
                                                    self.states_key.format(run_id)]))
        return through_redis_outage(step, what=f"run {run_id}: season {season} settled check")

    def _install_season_lists(self, run_id: str, seq: int) -> bool:
        """Install each season's task list for sequence `seq` unless someone did already."""
        by_season: dict[str, list[tuple[int, str, str]]] = {}
        for task in self.tasks(run_id).values():
            first = task.dates[0].isoformat() if task.dates else ""
            by_season.setdefault(task.season, []).append((task.wave, first, task.id))
        token = uuid.uuid4().hex[:8]
        keys = [self.seasons_built_key.format(run_id, seq)]
        pipe = self.client.pipeline()
        for season, entries in by_season.items():
            ids = [i for *_, i in sorted(entries)]
            tmp = f"{self.season_pending_key.format(run_id, seq, season)}:tmp:{token}"
            for i in range(0, len(ids), 1000):
                pipe.rpush(tmp, *ids[i:i + 1000])
            pipe.expire(tmp, 600)
            keys += [tmp, self.season_pending_key.format(run_id, seq, season)]
        pipe.execute()
        return bool(self._install_seasons(keys=keys, args=[self.season_ttl_seconds]))

    # -- guards and queued celery ids ----------------------------------------------------
    def claim(self, run_id: str, name: str, stale_after: float | None = None) -> bool:
        args: list[str | int] = [repr(now()), "" if stale_after is None else repr(float(stale_after)),
                                 self.guard_ttl_seconds]
        return bool(self._claim(keys=[self.guard_key.format(run_id, name)], args=args))

    def complete(self, run_id: str, name: str) -> None:
        self.client.set(self.guard_key.format(run_id, name), "done", ex=self.guard_ttl_seconds)

    def unclaim(self, run_id: str, name: str) -> None:
        self.client.delete(self.guard_key.format(run_id, name))

    def pause_run(self, run_id: str, kind: PauseKind, by: str, reason: str, at: float) -> bool:
        return bool(self._pause(args=[self._p(run_id), kind.value, by, reason, repr(at)]))

    def unpause_run(self, run_id: str, kinds: Sequence[PauseKind]) -> bool:
        return bool(self._unpause(args=[self._p(run_id), *(k.value for k in kinds)]))

    def task(self, run_id: str, task_id: str) -> Task | None:
        raw = self.client.hget(self.tasks_key.format(run_id), task_id)
        return Task.from_json(json.loads(raw)) if raw else None

    def add_queued(self, run_id: str, celery_ids: Sequence[str]) -> None:
        if celery_ids:
            self.client.sadd(self.queued_key.format(run_id), *celery_ids)

    def queued(self, run_id: str) -> list[str]:
        return sorted(self.client.smembers(self.queued_key.format(run_id)))
