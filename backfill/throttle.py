"""A distributed limit on concurrent warehouse jobs, shared by every worker through Redis.

Why it exists: the users' earlier backfill hit BigQuery's quotas ("Quota exceeded") because
nothing bounded how many jobs ran at once across machines. Here every warehouse call takes a
*slot* first. A slot is a lease: a member of a sorted set scored by its expiry time, taken and
given back by Lua scripts so that check-and-take is atomic across processes. A worker that is
SIGKILLed never gives its slot back, but its lease expires and the next acquirer reclaims it.

The limit adapts (AIMD): a quota error halves it (never below `min_limit`), and after
`recover_after` consecutive successes it creeps up by one (never above the configured max).
It also *probes*: a success when the limit has not changed for `probe_seconds` raises it by
one. Without that, a steady share of quota errors (30% of calls, say) never leaves 20
successes in a row, and the limit stayed at 1 for the rest of the run. The on-call person can
put it back to the maximum with `reset_limit` (`backfill throttle reset`).
All times come from the Redis server's clock (`TIME`), so workers with skewed clocks agree on
when a lease has expired.

`lease_seconds` must be longer than the longest warehouse call a slot protects: a lease that
expires while its call still runs lets one extra job in, which is harmless for correctness
(writes are idempotent) but exceeds the limit for a moment.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from backfill.state.redis import through_redis_outage

log = logging.getLogger(__name__)
# How long a task waits to give its throttle slot back through a Redis outage or failover.
RELEASE_BUDGET_SECONDS = 30.0

# KEYS: holders, limit, max; ARGV: member, lease_seconds, initial_limit
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(redis.call('GET', KEYS[2]))
if not limit then
  limit = tonumber(ARGV[3])
  redis.call('SET', KEYS[2], limit)
  redis.call('SET', KEYS[3], limit)
end
if redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# KEYS: limit, max, streak, events, last_cut, last_change; ARGV: kind, min_limit, recover_after,
#       max_events, initial_limit, cooldown_seconds, probe_seconds
_ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(redis.call('GET', KEYS[1])) or tonumber(ARGV[5])
local max = tonumber(redis.call('GET', KEYS[2])) or tonumber(ARGV[5])
local new = limit
local reason = ARGV[1]
if ARGV[1] == 'quota_error' then
  redis.call('SET', KEYS[3], 0)
  local last = tonumber(redis.call('GET', KEYS[5])) or 0
  if now - last < tonumber(ARGV[6]) then
    return limit
  end
  new = math.max(tonumber(ARGV[2]), math.floor(limit / 2))
  redis.call('SET', KEYS[5], tostring(now))
else
  local streak = redis.call('INCR', KEYS[3])
  local changed = tonumber(redis.call('GET', KEYS[6]))
  if streak >= tonumber(ARGV[3]) then
    redis.call('SET', KEYS[3], 0)
    new = math.min(max, limit + 1)
    reason = 'recovered'
  elseif limit < max and changed and now - changed >= tonumber(ARGV[7]) then
    redis.call('SET', KEYS[3], 0)
    new = limit + 1
    reason = 'probe'
  end
  if not changed then
    redis.call('SET', KEYS[6], tostring(now))
  end
end
if new ~= limit then
  redis.call('SET', KEYS[6], tostring(now))
  redis.call('SET', KEYS[1], new)
  redis.call('LPUSH', KEYS[4], cjson.encode({at = now, limit = new, previous = limit, reason = reason}))
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[4]) - 1)
end
return new
"""

# KEYS: limit, max, streak, events, last_change; ARGV: max_events. Back to the max, leases kept.
_RESET_LIMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local max = tonumber(redis.call('GET', KEYS[2]))
if not max then
  return -1
end
local limit = tonumber(redis.call('GET', KEYS[1])) or max
redis.call('SET', KEYS[1], max)
redis.call('SET', KEYS[3], 0)
redis.call('SET', KEYS[5], tostring(now))
redis.call('LPUSH', KEYS[4], cjson.encode({at = now, limit = max, previous = limit, reason = 'reset'}))
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[1]) - 1)
return max
"""

# KEYS: limit, max; ARGV: configured max. A new max clamps the live limit but keeps a backed-off one.
_CONFIGURE = """
redis.call('SET', KEYS[2], ARGV[1])
local limit = tonumber(redis.call('GET', KEYS[1]))
if (not limit) or limit > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""


class Throttle:
    """At most `limit()` holders at once, across every process that shares the Redis."""

    holders_key = "backfill:throttle:{name}:holders"
    limit_key = "backfill:throttle:{name}:limit"
    max_key = "backfill:throttle:{name}:max"
    streak_key = "backfill:throttle:{name}:streak"
    events_key = "backfill:throttle:{name}:events"
    last_cut_key = "backfill:throttle:{name}:last_cut"
    last_change_key = "backfill:throttle:{name}:last_change"

    max_events = 200
    # Jobs already in flight when the first quota error arrives usually fail too; counting each
    # of them as a fresh signal would collapse the limit to 1 in one burst. One cut per window.
    cut_cooldown_seconds = 1.0

    def __init__(self, client: redis.Redis, name: str = "warehouse", *, initial_limit: int, min_limit: int = 1,
                 lease_seconds: float = 600, recover_after: int = 20, probe_seconds: float = 30.0) -> None:
        if initial_limit < 1 or min_limit < 1 or min_limit > initial_limit:
            raise ValueError(f"need 1 <= min_limit ({min_limit}) <= initial_limit ({initial_limit})")
        if lease_seconds <= 0 or recover_after < 1 or probe_seconds <= 0:
            raise ValueError("lease_seconds and probe_seconds must be > 0 and recover_after >= 1")
        self.client = client
        self.name = name
        self.initial_limit = initial_limit
        self.min_limit = min_limit
        self.lease_seconds = lease_seconds
        self.recover_after = recover_after
        self.probe_seconds = probe_seconds
        self._acquire = client.register_script(_ACQUIRE)
        self._reset_limit = client.register_script(_RESET_LIMIT)
        self._adjust = client.register_script(_ADJUST)
        self._configure = client.register_script(_CONFIGURE)
        self._keys_configured = False

    def _key(self, template: str) -> str:
        return template.format(name=self.name)

    def _ensure_configured(self) -> None:
        # Lazily, so constructing a Throttle never talks to Redis (workers build it at import).
        if not self._keys_configured:
            self._configure(keys=[self._key(self.limit_key), self._key(self.max_key)], args=[self.initial_limit])
            self._keys_configured = True

    def try_acquire(self, holder: str) -> str | None:
        """Take a slot now if one is free; returns the lease member to release, or None."""
        self._ensure_configured()
        member = f"{holder}#{uuid.uuid4().hex[:12]}"
        keys = [self._key(self.holders_key), self._key(self.limit_key), self._key(self.max_key)]
        got = self._acquire(keys=keys, args=[member, self.lease_seconds, self.initial_limit])
        return member if int(got) == 1 else None

    def release(self, member: str) -> None:
        """Give a slot back, through a short Redis outage or failover (a slot left taken would idle
        its share of the concurrency for the whole lease). Past `RELEASE_BUDGET_SECONDS` it gives
        up: the lease expires by itself."""
        try:
            through_redis_outage(lambda: self.client.zrem(self._key(self.holders_key), member),
                                 RELEASE_BUDGET_SECONDS, f"release of throttle slot {member}")
        except redis.RedisError as exc:
            log.warning("could not release throttle slot %s (%s); its lease will expire", member,
                        type(exc).__name__)

    @contextmanager
    def slot(self, holder: str, timeout: float = 300) -> Iterator[None]:
        """Hold one slot for the body; raises TimeoutError if none frees up within `timeout`."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            member = self.try_acquire(holder)
            if member is not None:
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {self.name} throttle slot for {holder} within {timeout:g}s "
                                   f"(limit {self.limit()}, in use {self.in_use()})")
            # Jitter keeps many waiting workers from polling in lockstep.
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(0.5, 1.0))
            delay = min(delay * 1.5, 0.25)
        try:
            yield
        finally:
            self.release(member)

    def _adjust_limit(self, kind: str) -> int:
        self._ensure_configured()
        keys = [self._key(t) for t in (self.limit_key, self.max_key, self.streak_key, self.events_key,
                                       self.last_cut_key, self.last_change_key)]
        args: list[str | int | float] = [kind, self.min_limit, self.recover_after, self.max_events, self.initial_limit,
                                         self.cut_cooldown_seconds, self.probe_seconds]
        return int(self._adjust(keys=keys, args=args))

    def record_success(self) -> int:
        """Count a successful warehouse call; returns the (possibly raised) limit."""
        return self._adjust_limit("success")

    def record_quota_error(self) -> int:
        """Halve the limit (not below min_limit) and reset the success streak; returns the limit."""
        new = self._adjust_limit("quota_error")
        log.info("warehouse quota error: %s throttle limit now %d", self.name, new)
        return new

    def limit(self) -> int:
        value = self.client.get(self._key(self.limit_key))
        return int(value) if value is not None else self.initial_limit

    def in_use(self) -> int:
        """Live (unexpired) leases; expired ones are not counted even before they are reclaimed."""
        seconds, micros = self.client.time()
        now = seconds + micros / 1_000_000
        return int(self.client.zcount(self._key(self.holders_key), f"({now}", "+inf"))

    def events(self) -> list[dict[str, Any]]:
        """Limit changes, oldest first: {at (epoch), time (ISO UTC), limit, previous, reason}."""
        raw = self.client.lrange(self._key(self.events_key), 0, -1)
        out: list[dict[str, Any]] = []
        for item in reversed(raw):
            event = json.loads(item)
            event["time"] = dt.datetime.fromtimestamp(float(event["at"]), dt.UTC).isoformat()
            event["limit"] = int(event["limit"])
            event["previous"] = int(event["previous"])
            out.append(event)
        return out

    def max_limit(self) -> int | None:
        """The configured maximum the workers last set (None before any worker used the throttle)."""
        value = self.client.get(self._key(self.max_key))
        return int(value) if value is not None else None

    def reset_limit(self) -> int | None:
        """Put the live limit back to the configured maximum now (an event `reset`); leases held stay.

        For the on-call person after a quota storm ended (or was fixed elsewhere): the limit would
        get there by itself, one probe at a time. None when no worker has configured it yet.
        """
        keys = [self._key(t) for t in (self.limit_key, self.max_key, self.streak_key, self.events_key,
                                       self.last_change_key)]
        new = int(self._reset_limit(keys=keys, args=[self.max_events]))
        return None if new < 0 else new

    def reset(self) -> None:
        """Forget limit, streak, leases and events (tests; a fresh start after changing the max)."""
        keys = [self._key(t) for t in (self.holders_key, self.limit_key, self.max_key, self.streak_key,
                                       self.events_key, self.last_cut_key, self.last_change_key)]
        self.client.delete(*keys)
        self._keys_configured = False
