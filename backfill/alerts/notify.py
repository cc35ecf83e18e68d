"""Alerts as an engine observer (`AlertObserver`), and the digest `digest`/`status` read.

Modes (the run's `alerts`, from `enqueue --alerts` or `BACKFILL_ALERTS`):
- `digest`: issues accumulate per season; when the last task of a season in the run settles,
  that season's digest is sent; when the run ends, a final digest of the whole run. A
  `critical` issue is sent at once, once per distinct cause (processor, category, message
  with dates and numbers blanked). `registry_gap` and `partial_data` only ever appear in digests.
- `immediate`: one message per final task failure, when it happens; nothing else.
- `off`: nothing is sent anywhere (Sentry included); `backfill digest` still shows it all.

Exactly once. The engine tells its observers a task settled only for a settle its atomic step
accepted, so duplicate callbacks and late redeliveries never get here twice. What is sent is guarded
twice: a Redis claim per scope (two workers finishing a season's last tasks at once) and a
durable ledger in the warehouse (`alerts.ledger`), so a season digest sent before Redis was
flushed is not sent again after `resume` rebuilt the run. Season digests are sent once per
run, ever; a `retry` that changes the outcome sends one `update` digest when it ends, a retry
that changes nothing sends none.

Never fatal: the engine logs and skips an observer that raises; a sink is retried a few times, then its
failure is recorded in Redis, where `status` shows it. The run goes on either way.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from backfill.alerts.categories import CRITICAL, Issue, cause_key, issues_of
from backfill.alerts.digest import Digest, build_digest
from backfill.alerts.ledger import read_sent, write_sent
from backfill.alerts.message import Alert
from backfill.alerts.sinks import Sink, configured_sinks, deliver, secrets_of
from backfill.alerts.store import AlertStore
from backfill.engine.events import EngineObserver, RetryStarted, RunFinished, SeasonComplete, TaskSettled
from backfill.planner import Task
from backfill.settings import Settings
from backfill.state import RedisStateStore, RunRecord, TaskStatus
from backfill.warehouse import Warehouse

log = logging.getLogger(__name__)
WarehouseSource = Callable[[], Warehouse | None]
MODES = ("digest", "immediate", "off")


def _no_warehouse() -> Warehouse | None:
    return None


class Notifier:
    """One run's alerting: its state store, settings and sinks (tests pass their own sinks)."""

    def __init__(self, store: RedisStateStore, settings: Settings, warehouse: WarehouseSource = _no_warehouse,
                 sinks: list[Sink] | None = None) -> None:
        self.store = store
        self.alerts = AlertStore(store.client)
        self.settings = settings
        self.warehouse = warehouse
        self._sinks = sinks

    @property
    def sinks(self) -> list[Sink]:
        if self._sinks is None:
            self._sinks = configured_sinks(self.settings)
        return self._sinks

    # -- what the observer hands on -----------------------------------------------------------
    def task_settled(self, run: RunRecord, task_id: str, task: Task | None, status: TaskStatus,
                     result: Mapping[str, Any] | None) -> None:
        task = task if task is not None and task.id == task_id else self.store.task(run.run_id, task_id)
        if task is None:
            return
        issues = issues_of(result) if result is not None and not result.get("noop") else []
        self.alerts.record_issues(run.run_id, task.season, task_id, issues)
        if run.alerts == "immediate" and status is TaskStatus.failed and result is not None:
            self._send_failure(run, task_id, result, "failure")
        if run.alerts != "digest":
            return
        for issue in self._distinct_critical(issues):
            self._send_critical(run, task_id, issue, result or {})

    def season_complete(self, run: RunRecord, season: str) -> None:
        if run.alerts == "digest":
            self._send_digest(run, f"season:{season}", "season", season)

    def run_finished(self, run_id: str) -> None:
        run = self.store.get_run(run_id)
        if run is None or run.alerts != "digest":
            return
        sent = self._sent(run)
        if "final" not in sent:
            self._send_digest(run, "final", "final", None)
        elif self.alerts.is_retry(run_id, run.seq):
            self._send_digest(run, "final", "update", None, unless_fingerprint=sent["final"])

    # -- digests --------------------------------------------------------------------------
    def digest(self, run_id: str, season: str | None = None, kind: str = "current") -> Digest:
        """The digest as it stands: what a sink would get for this scope right now."""
        seasons = [season] if season else self.alerts.seasons(run_id) or self._task_seasons(run_id)
        tasks = self.store.tasks(run_id)
        issues: list[Issue] = []
        for s in seasons:
            for found in self.alerts.issues(run_id, s).values():
                issues += found
        states = self.store.states(run_id)
        blocked = [t for t, st in states.items() if st is TaskStatus.blocked and t in tasks
                   and (season is None or tasks[t].season == season)]
        causes = self.store.blocked_by(run_id, blocked)
        for t in blocked:
            task = tasks[t]
            issues += [Issue("dependency_gap", task.processor, d.isoformat(), "blocked",
                             f"blocked: upstream {causes.get(t, 'task')} failed") for d in task.dates]
        game_dates: dict[str, set[str]] = {}
        for task in tasks.values():
            if season is None or task.season == season:
                game_dates.setdefault(task.processor, set()).update(d.isoformat() for d in task.dates)
        return build_digest(run_id, kind, season, issues, {p: sorted(ds) for p, ds in game_dates.items()},
                            seasons=sorted({t.season for t in tasks.values()}) if season is None else [season])

    def _task_seasons(self, run_id: str) -> list[str]:
        return sorted({t.season for t in self.store.tasks(run_id).values()}, reverse=True)

    def _send_digest(self, run: RunRecord, scope: str, kind: str, season: str | None,
                     unless_fingerprint: str | None = None) -> None:
        claim = f"{scope}:{run.seq}"
        if scope in self._sent(run) and kind != "update":
            return
        if not self.alerts.claim(run.run_id, claim):
            return
        digest = self.digest(run.run_id, season, kind)
        if unless_fingerprint is not None and digest.fingerprint() == unless_fingerprint:
            return  # a retry that changed nothing: no update
        self._send(run, Alert(kind, run.run_id, scope, digest=digest), digest.fingerprint(), digest.total)

    # -- one failure at a time --------------------------------------------------------------
    @staticmethod
    def _distinct_critical(issues: list[Issue]) -> list[Issue]:
        seen: dict[str, Issue] = {}
        for i in issues:
            if i.category == CRITICAL:
                seen.setdefault(cause_key(i.processor, i.category, i.message), i)
        return list(seen.values())

    def _send_critical(self, run: RunRecord, task_id: str, issue: Issue, result: Mapping[str, Any]) -> None:
        scope = "critical:" + hashlib.sha256(cause_key(issue.processor, issue.category,
                                                       issue.message).encode()).hexdigest()[:12]
        if scope in self._sent(run) or not self.alerts.claim(run.run_id, scope, ttl=self.alerts.ttl_seconds):
            return
        failure = {"processor": issue.processor, "category": issue.category, "task_id": task_id,
                   "dates": [issue.date], "message": issue.message, "attempt": result.get("attempt")}
        self._send(run, Alert("critical", run.run_id, scope, failure=failure), scope, 1)

    def _send_failure(self, run: RunRecord, task_id: str, result: Mapping[str, Any], kind: str) -> None:
        scope = f"failure:{task_id}:{run.seq}:{result.get('attempt', 1)}"
        if not self.alerts.claim(run.run_id, scope, ttl=self.alerts.ttl_seconds):
            return
        from backfill.alerts.categories import category_of, first_line

        message = str(result.get("error_message") or "")
        failure = {"processor": result.get("processor"), "category": category_of(result.get("error_category"), message),
                   "task_id": task_id, "dates": [str(d) for d in result.get("dates") or []],
                   "message": first_line(message, 1000), "attempt": result.get("attempt")}
        self._send(run, Alert(kind, run.run_id, scope, failure=failure), scope, 1, durable=False)

    # -- sending and remembering --------------------------------------------------------------
    def _sent(self, run: RunRecord) -> dict[str, str]:
        """What was sent for this run: Redis's mirror, filled from the warehouse ledger once."""
        if not self.alerts.ledger_loaded(run.run_id):
            warehouse = self.warehouse()
            if warehouse is not None:
                try:
                    self.alerts.load_sent(run.run_id, read_sent(warehouse, run.history_table, run.run_id))
                except Exception:  # noqa: BLE001 - the Redis mirror still guards within this Redis
                    log.warning("run %s: could not read the alert ledger", run.run_id, exc_info=True)
        return self.alerts.sent(run.run_id)

    def _send(self, run: RunRecord, alert: Alert, fingerprint: str, total: int, durable: bool = True) -> None:
        """Record, then deliver: a worker killed in between loses this one alert (the final
        digest still lists its issues) rather than sending it twice after a resume."""
        self.alerts.mark_sent(run.run_id, alert.scope, fingerprint)
        if durable:
            warehouse = self.warehouse()
            if warehouse is not None:
                try:
                    write_sent(warehouse, run.history_table, run.run_id, alert.scope, alert.kind, fingerprint, total,
                               [s.name for s in self.sinks])
                except Exception:  # noqa: BLE001 - Redis still remembers; only a flush would forget
                    log.warning("run %s: could not record alert %s in the ledger", run.run_id, alert.scope,
                                exc_info=True)

        def failed(sink: str, error: str) -> None:
            self.alerts.log_failure(run.run_id, {"sink": sink, "kind": alert.kind, "scope": alert.scope,
                                                 "error": error[:500]})

        took = deliver(alert, self.sinks, attempts=self.settings.alert_attempts,
                       backoff=self.settings.alert_backoff_seconds, secrets=secrets_of(self.settings),
                       on_failure=failed)
        self.alerts.log_sent(run.run_id, {"kind": alert.kind, "scope": alert.scope, "sinks": took, "total": total})
        log.info("run %s: %s alert %s sent to %s", run.run_id, alert.kind, alert.scope, ", ".join(took) or "no sink")


class AlertObserver(EngineObserver):
    """Alerts listening to the engine: issues per task, critical and immediate alerts, season
    and final digests, retry marks. Alert state lives beside run state, in Redis."""

    def __init__(self, store: RedisStateStore, settings: Settings, sinks: list[Sink] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.sinks = sinks

    def _notifier(self, warehouse: WarehouseSource) -> Notifier:
        return Notifier(self.store, self.settings, warehouse, self.sinks)

    def on_task_settled(self, event: TaskSettled) -> None:
        self._notifier(event.warehouse).task_settled(event.run, event.task_id, event.task, event.status, event.result)

    def on_season_complete(self, event: SeasonComplete) -> None:
        self._notifier(event.warehouse).season_complete(event.run, event.season)

    def on_run_finished(self, event: RunFinished) -> None:
        warehouse = event.warehouse
        self._notifier(lambda: warehouse).run_finished(event.run_id)

    def on_retry(self, event: RetryStarted) -> None:
        """Mark sequence `seq` as a retry: its end may send an `update` digest (if the outcome changed)."""
        AlertStore(self.store.client).mark_retry(event.run_id, event.seq)


def alert_status(store: RedisStateStore, run_id: str) -> dict[str, Any]:
    """For `status`: the mode, what was sent (kind, scope, sinks that took it) and sink failures."""
    run = store.get_run(run_id)
    alerts = AlertStore(store.client)
    return {"mode": run.alerts if run else None, "sent": alerts.sent_log(run_id), "failures": alerts.failures(run_id)}
