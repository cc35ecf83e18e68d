"""The watchdog: expired leases, stalled runs, runs whose finish step failed.

A dead worker, a purged queue, a revoked or lost message can each leave a task that nobody
will run; `sweep` (each worker runs it every few seconds) re-sends tasks whose lease expired
and heals a run that made no progress for `stall_after` seconds with nothing running.
Whether a run is stalled (`stall`) is derived in `progress`, which shows it too.
"""

from __future__ import annotations

import logging

from backfill.engine.events import NO_OBSERVERS, Observers, RunStalled, WarehouseSource
from backfill.engine.lifecycle import Dispatcher, TriggerPauser, finish, send
from backfill.engine.progress import stall
from backfill.settings import Settings
from backfill.state import StateStore, TaskStatus
from backfill.state.base import now

log = logging.getLogger(__name__)
__all__ = ["heal", "reap", "stall", "sweep"]


def reap(store: StateStore, dispatcher: Dispatcher, run_id: str) -> int:
    """Re-send the running tasks whose lease expired (their worker died); returns how many."""
    ids = store.reap(run_id)
    if ids:
        log.warning("run %s: lease expired for %d running task(s); re-sending %s", run_id, len(ids),
                    ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else ""))
        send(store, dispatcher, run_id, ids)
    return len(ids)


def heal(store: StateStore, dispatcher: Dispatcher, run_id: str, settings: Settings,
         warehouse: WarehouseSource = lambda: None, triggers: TriggerPauser | None = None, *,
         observers: Observers = NO_OBSERVERS) -> int | None:
    """Re-send a stalled run's in-flight tasks and pump its ready set, once (a Redis lock keeps a
    second watchdog out); records that it did and tells the observers. Returns the tasks
    re-sent, or None if not stalled."""
    found = stall(store, run_id, settings.stall_after)
    if found is None or not store.try_lock(run_id, "heal", settings.stall_after):
        return None
    flight = store.inflight(run_id)
    states = store.states(run_id)
    lost = [t for t in flight if states.get(t) is TaskStatus.pending]
    store.mark_sent(run_id, lost)
    send(store, dispatcher, run_id, lost)
    fresh = store.pump(run_id, settings.dispatch_window)
    send(store, dispatcher, run_id, fresh)
    run = store.get_run(run_id)
    store.update_run(run_id, healed=(run.healed if run else 0) + 1, healed_at=now(), heal_reason=found["reason"])
    log.warning("run %s stalled (%s): re-sent %d task(s), sent %d ready", run_id, found["reason"], len(lost),
                len(fresh))
    observers.stalled(RunStalled(store, run_id, found["reason"], len(lost), len(fresh)))
    return len(lost) + len(fresh)


def sweep(store: StateStore, dispatcher: Dispatcher, settings: Settings, warehouse: WarehouseSource,
          triggers: TriggerPauser | None = None, *, observers: Observers = NO_OBSERVERS) -> dict[str, int]:
    """One watchdog pass over every active run: reap expired leases, heal stalls, finish what is done."""
    out = {"runs": 0, "resent": 0, "healed": 0, "finished": 0}
    for run_id in store.active_runs():
        run = store.get_run(run_id)
        if run is None or not run.status.active:
            store.deactivate(run_id)
            continue
        out["runs"] += 1
        out["resent"] += reap(store, dispatcher, run_id)
        if store.open_count(run_id) <= 0:
            if finish(store, run_id, warehouse(), triggers, observers=observers) is not None:
                out["finished"] += 1
            continue
        if heal(store, dispatcher, run_id, settings, warehouse, triggers, observers=observers) is not None:
            out["healed"] += 1
    return out
