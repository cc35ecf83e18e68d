"""Where alerts keep their state in Redis: issues per season, season-settled lists, send guards.

Key templates live on the class, the client is passed in (like `RedisStateStore`). Every
write is keyed, so doing it twice is harmless: a task's issues are one hash field (a
redelivered or retried task overwrites its own field), a guard is a SET NX. The season check
is one Lua call that pops settled tasks off the head of the season's list (ordered the way
tasks are dispatched), so it costs O(1) amortised per settled task, not a scan of the run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from backfill.alerts.categories import Issue

# KEYS: the season's pending list, the run's task-state hash. Pop settled tasks off the head;
# 1 when none is left (every task of the season settled), else 0.
SEASON_SETTLED = """
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then return 1 end
  local st = redis.call('HGET', KEYS[2], head)
  if st == 'pending' or st == 'running' then return 0 end
  redis.call('LPOP', KEYS[1])
end
"""

# KEYS: built flag, then pairs (temporary list, list); ARGV: ttl. The first builder of a
# sequence wins; its lists appear at once, so no checker ever sees a half-built list.
INSTALL = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  for i = 2, #KEYS, 2 do redis.call('DEL', KEYS[i]) end
  return 0
end
for i = 2, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[i + 1])
    redis.call('EXPIRE', KEYS[i + 1], ARGV[1])
  end
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""


class AlertStore:
    issues_key = "backfill:alerts:{0}:issues:{1}"  # run, season -> hash task id -> JSON list of issues
    seasons_key = "backfill:alerts:{0}:seasons"  # set of seasons with tasks in the run
    built_key = "backfill:alerts:{0}:{1}:built"  # run, seq: the season lists of that sequence exist
    pending_key = "backfill:alerts:{0}:{1}:pending:{2}"  # run, seq, season -> list of unsettled task ids
    sent_key = "backfill:alerts:{0}:sent"  # run -> hash scope -> fingerprint (mirror of the ledger)
    ledger_loaded_key = "backfill:alerts:{0}:ledger"  # the warehouse ledger was read into `sent`
    claim_key = "backfill:alerts:{0}:claim:{1}"  # run, scope(+seq): one sender at a time
    retry_key = "backfill:alerts:{0}:retry:{1}"  # run, seq: that sequence is a `retry` (may send an update)
    failures_key = "backfill:alerts:{0}:failures"  # list of JSON: sink deliveries that failed
    log_key = "backfill:alerts:{0}:log"  # list of JSON: what was sent, where
    ttl_seconds = 30 * 24 * 3600

    def __init__(self, client: Any) -> None:
        self.client = client
        self._season_settled = client.register_script(SEASON_SETTLED)
        self._install = client.register_script(INSTALL)

    # -- issues ---------------------------------------------------------------------------
    def record_issues(self, run_id: str, season: str, task_id: str, issues: Sequence[Issue]) -> None:
        """Replace a task's issues (none: the field goes, e.g. a retry fixed it)."""
        key = self.issues_key.format(run_id, season)
        pipe = self.client.pipeline()
        if issues:
            pipe.hset(key, task_id, json.dumps([i.to_json() for i in issues]))
            pipe.expire(key, self.ttl_seconds)
        else:
            pipe.hdel(key, task_id)
        pipe.sadd(self.seasons_key.format(run_id), season)
        pipe.expire(self.seasons_key.format(run_id), self.ttl_seconds)
        pipe.execute()

    def issues(self, run_id: str, season: str) -> dict[str, list[Issue]]:
        raw = self.client.hgetall(self.issues_key.format(run_id, season))
        return {k: [Issue.from_json(i) for i in json.loads(v)] for k, v in raw.items()}

    def seasons(self, run_id: str) -> list[str]:
        return sorted(self.client.smembers(self.seasons_key.format(run_id)), reverse=True)

    # -- seasons settled ------------------------------------------------------------------
    def is_built(self, run_id: str, seq: int) -> bool:
        return bool(self.client.exists(self.built_key.format(run_id, seq)))

    def install_lists(self, run_id: str, seq: int, by_season: Mapping[str, Sequence[str]]) -> bool:
        """Install each season's task list for sequence `seq` unless someone did already."""
        token = uuid.uuid4().hex[:8]
        keys = [self.built_key.format(run_id, seq)]
        pipe = self.client.pipeline()
        for season, ids in by_season.items():
            tmp = f"{self.pending_key.format(run_id, seq, season)}:tmp:{token}"
            for i in range(0, len(ids), 1000):
                pipe.rpush(tmp, *ids[i:i + 1000])
            pipe.expire(tmp, 600)
            keys += [tmp, self.pending_key.format(run_id, seq, season)]
        if by_season:
            pipe.sadd(self.seasons_key.format(run_id), *by_season)
        pipe.execute()
        return bool(self._install(keys=keys, args=[self.ttl_seconds]))

    def season_settled(self, run_id: str, seq: int, season: str, states_key: str) -> bool:
        return bool(self._season_settled(keys=[self.pending_key.format(run_id, seq, season), states_key]))

    # -- guards: who sends, and what was sent ---------------------------------------------
    def claim(self, run_id: str, name: str, ttl: float = 300.0) -> bool:
        return bool(self.client.set(self.claim_key.format(run_id, name), "1", nx=True, px=int(ttl * 1000)))

    def release(self, run_id: str, name: str) -> None:
        self.client.delete(self.claim_key.format(run_id, name))

    def sent(self, run_id: str) -> dict[str, str]:
        return dict(self.client.hgetall(self.sent_key.format(run_id)))

    def ledger_loaded(self, run_id: str) -> bool:
        return bool(self.client.exists(self.ledger_loaded_key.format(run_id)))

    def load_sent(self, run_id: str, sent: Mapping[str, str]) -> None:
        pipe = self.client.pipeline()
        if sent:
            pipe.hset(self.sent_key.format(run_id), mapping=dict(sent))
        pipe.set(self.ledger_loaded_key.format(run_id), "1", ex=self.ttl_seconds)
        pipe.expire(self.sent_key.format(run_id), self.ttl_seconds)
        pipe.execute()

    def mark_sent(self, run_id: str, scope: str, fingerprint: str) -> None:
        self.client.hset(self.sent_key.format(run_id), scope, fingerprint)
        self.client.expire(self.sent_key.format(run_id), self.ttl_seconds)

    def mark_retry(self, run_id: str, seq: int) -> None:
        self.client.set(self.retry_key.format(run_id, seq), "1", ex=self.ttl_seconds)

    def is_retry(self, run_id: str, seq: int) -> bool:
        return bool(self.client.exists(self.retry_key.format(run_id, seq)))

    # -- what happened, for `status` --------------------------------------------------------
    def _append(self, key: str, entry: Mapping[str, Any]) -> None:
        pipe = self.client.pipeline()
        pipe.rpush(key, json.dumps({**entry, "at": time.time()}))
        pipe.ltrim(key, -200, -1)
        pipe.expire(key, self.ttl_seconds)
        pipe.execute()

    def log_failure(self, run_id: str, entry: Mapping[str, Any]) -> None:
        self._append(self.failures_key.format(run_id), entry)

    def log_sent(self, run_id: str, entry: Mapping[str, Any]) -> None:
        self._append(self.log_key.format(run_id), entry)

    def failures(self, run_id: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.client.lrange(self.failures_key.format(run_id), 0, -1)]

    def sent_log(self, run_id: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.client.lrange(self.log_key.format(run_id), 0, -1)]
