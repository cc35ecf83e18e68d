"""What the engine tells whoever listens: a task settled, a season completed, a run finished,
a run stalled, a retry started.

The engine imports none of its listeners (alerts, the run-history flusher): they are
`EngineObserver`s registered explicitly where the engine is wired (the worker context, the
CLI session), as dramatiq's middleware are. Every hook does nothing by default, so an
observer overrides only what it needs, and a new event breaks no observer. An observer that
raises is logged and skipped: no listener can fail a task, a finish or a retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from backfill.planner import Task
from backfill.state import RunRecord, RunStatus, Settled, StateStore, TaskStatus
from backfill.warehouse import Warehouse

log = logging.getLogger(__name__)
WarehouseSource = Callable[[], Warehouse | None]


def no_warehouse() -> Warehouse | None:
    return None


@dataclass(frozen=True)
class TaskSettled:
    """A settle the atomic step accepted (a duplicate or stale one never gets here), after the
    tasks it released were sent. `settled` says how many tasks are still open and how many
    history rows wait; `warehouse` is the settle's own (opened only if an observer asks)."""

    store: StateStore
    run: RunRecord
    task_id: str
    task: Task | None
    status: TaskStatus
    result: Mapping[str, Any] | None
    settled: Settled
    warehouse: WarehouseSource = no_warehouse


@dataclass(frozen=True)
class SeasonComplete:
    """The last task of `season` in this sequence of the run settled (before the run's finish).

    Two workers settling a season's last tasks at once may both see it: observers that act
    once guard with a claim of their own.
    """

    store: StateStore
    run: RunRecord
    season: str
    warehouse: WarehouseSource = no_warehouse


@dataclass(frozen=True)
class RunFinished:
    """The run closed (once per sequence): its history written, status set, locks released."""

    store: StateStore
    run_id: str
    status: RunStatus
    warehouse: Warehouse | None = None


@dataclass(frozen=True)
class RunStalled:
    """The watchdog found the run stalled and healed it: `resent` in-flight tasks re-sent, `sent` ready ones sent."""

    store: StateStore
    run_id: str
    reason: str
    resent: int
    sent: int


@dataclass(frozen=True)
class RetryStarted:
    """`retry` is about to run the run's failed, blocked, revoked and partial tasks again as sequence `seq`."""

    store: StateStore
    run_id: str
    seq: int
    tasks: int


class EngineObserver:
    """Hooks the engine calls; each does nothing unless overridden."""

    def on_task_settled(self, event: TaskSettled) -> None:
        """After a task's outcome was recorded and the tasks it released were sent."""

    def on_season_complete(self, event: SeasonComplete) -> None:
        """After the last task of a season settled, before the run finishes."""

    def on_run_finished(self, event: RunFinished) -> None:
        """After the run's status was written and its locks and trigger pauses released."""

    def on_stalled(self, event: RunStalled) -> None:
        """After the watchdog healed a stalled run."""

    def on_retry(self, event: RetryStarted) -> None:
        """Before any retried task is sent, so none of them can settle first."""


class Observers:
    """The observers a wiring registered, in order; each hook is called on each, errors logged and skipped."""

    def __init__(self, observers: Iterable[EngineObserver] = ()) -> None:
        self.observers: tuple[EngineObserver, ...] = tuple(observers)

    def __len__(self) -> int:
        return len(self.observers)

    def __iter__(self) -> Any:
        return iter(self.observers)

    def wants(self, hook: str) -> bool:
        """Whether any observer overrides `hook`: the engine skips work (a season check) nobody listens for."""
        default = getattr(EngineObserver, hook)
        return any(getattr(type(o), hook, default) is not default for o in self.observers)

    def _emit(self, hook: str, run_id: str, call: Callable[[EngineObserver], None]) -> None:
        for observer in self.observers:
            try:
                call(observer)
            except Exception:  # noqa: BLE001 - a listener never fails the engine's step
                log.warning("run %s: observer %s failed on %s", run_id, type(observer).__name__, hook, exc_info=True)

    def task_settled(self, event: TaskSettled) -> None:
        self._emit("on_task_settled", event.run.run_id, lambda o: o.on_task_settled(event))

    def season_complete(self, event: SeasonComplete) -> None:
        self._emit("on_season_complete", event.run.run_id, lambda o: o.on_season_complete(event))

    def run_finished(self, event: RunFinished) -> None:
        self._emit("on_run_finished", event.run_id, lambda o: o.on_run_finished(event))

    def stalled(self, event: RunStalled) -> None:
        self._emit("on_stalled", event.run_id, lambda o: o.on_stalled(event))

    def retry(self, event: RetryStarted) -> None:
        self._emit("on_retry", event.run_id, lambda o: o.on_retry(event))


NO_OBSERVERS = Observers()
