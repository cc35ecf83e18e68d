"""How the engine reaches workers and the live pipeline: the Dispatcher and TriggerPauser seams,
and sending the tasks a step moved in flight with their broker priority.

The lowest module of the engine: `lifecycle`, `holds` and `watchdog` all send through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from backfill.planner import Task
from backfill.planner.model import TaskKey
from backfill.state import StateStore


class Dispatcher(Protocol):
    """How the engine sends work; `workers.tasks.CeleryDispatcher` is the real one."""

    def send(self, run_id: str, task_ids: Sequence[str], priorities: Sequence[int] | None = None) -> list[str]:
        """One `backfill.run_task(run_id, task_id)` message per task; returns the message ids.

        `priorities` (0 first, up to 9): the broker hands a worker the preferred season's
        messages before older ones already queued, so dependency order and season preference
        both hold with many messages in flight.
        """

    def revoke(self, queued_ids: Sequence[str]) -> None: ...


class TriggerPauser(Protocol):
    def pause(self, name: str, holder: str, ttl_seconds: float, reason: str = "") -> None: ...

    def renew(self, name: str, holder: str, ttl_seconds: float) -> bool: ...

    def release(self, name: str, holder: str) -> bool: ...


def task_keys(tasks: Iterable[Task]) -> list[TaskKey]:
    return [(t.processor, d) for t in tasks for d in t.dates]


def trigger_names(tasks: Iterable[Task]) -> list[str]:
    from backfill.triggers import triggers_for_phases

    return triggers_for_phases({t.phase for t in tasks})


def send(store: StateStore, dispatcher: Dispatcher, run_id: str, task_ids: Sequence[str]) -> None:
    """Send messages for tasks already moved in flight (a crash between the two is what the watchdog heals)."""
    if task_ids:
        store.add_queued(run_id, dispatcher.send(run_id, task_ids, season_priorities(store, run_id, task_ids)))


def season_priorities(store: StateStore, run_id: str, task_ids: Sequence[str]) -> list[int]:
    """Broker priority per task: 0 for the preferred season (most recent under `recent-first`), 1 for
    the next, ... up to 9. Without it a downstream task of the preferred season, ready only once its
    upstream finished, would queue behind every older season's task sent before it."""
    run = store.get_run(run_id)
    ranked = [s for s in (run.seasons if run else "").split(",") if s]
    if not ranked:
        return [0] * len(task_ids)
    rank = {s: min(i, 9) for i, s in enumerate(ranked)}
    tasks = store.tasks_by_id(run_id, task_ids)
    return [rank.get(tasks[t].season, 9) if t in tasks else 9 for t in task_ids]
