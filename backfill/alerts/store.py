"""Where alerts keep their state in Redis: issues per season, send guards, what was sent.

Key templates live on the class, the client is passed in (like `RedisStateStore`). Every
write is keyed, so doing it twice is harmless: a task's issues are one hash field (a
redelivered or retried task overwrites its own field), a guard is a SET NX. When a season
completes is the engine's to say (its season-complete event, from the state store).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from backfill.alerts.categories import Issue


class AlertStore:
    issues_key = "backfill:alerts:{0}:issues:{1}"  # run, season -> hash task id -> JSON list of issues
    seasons_key = "backfill:alerts:{0}:seasons"  # set of seasons with tasks in the run
    sent_key = "backfill:alerts:{0}:sent"  # run -> hash scope -> fingerprint (mirror of the ledger)
    ledger_loaded_key = "backfill:alerts:{0}:ledger"  # the warehouse ledger was read into `sent`
    claim_key = "backfill:alerts:{0}:claim:{1}"  # run, scope(+seq): one sender at a time
    retry_key = "backfill:alerts:{0}:retry:{1}"  # run, seq: that sequence is a `retry` (may send an update)
    failures_key = "backfill:alerts:{0}:failures"  # list of JSON: sink deliveries that failed
    log_key = "backfill:alerts:{0}:log"  # list of JSON: what was sent, where
    ttl_seconds = 30 * 24 * 3600

    def __init__(self, client: Any) -> None:
        self.client = client

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
