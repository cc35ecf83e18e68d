"""What holds a run back, and what a run holds: pauses, execution windows, season gates, trigger leases.

- `pause`: by hand (`backfill pause`); `resume` in `lifecycle` lifts it.
- `apply_window`: a run enqueued with `--window` is paused outside it and resumed at opening;
  the watchdog's sweep calls it with its clock, `start_run` and `resume` with theirs.
- `gate`: a run enqueued with `--gate validate` validates each season before the next starts
  (`backfill.gates` holds the season logic).
- `keep_triggers`: a run's trigger pauses are renewed while it has an unsettled task of that
  phase or an earlier one (after a cancel: an incomplete write of them) and released when not;
  the watchdog's sweep calls it, so no task length can let a pause lapse.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from backfill.engine.dispatch import Dispatcher, TriggerPauser, send, trigger_names
from backfill.engine.events import WarehouseSource
from backfill.engine.history import FLUSH_LOCK_SECONDS, flush_history
from backfill.errors import BadInput
from backfill.settings import Settings
from backfill.state import PauseKind, RunRecord, RunStatus, StateStore, TaskStatus
from backfill.state.base import now
from backfill.windows import ExecutionWindow

log = logging.getLogger(__name__)
# A run's trigger pause: a lease of an hour (Settings.trigger_lease_seconds), renewed by the
# watchdog every minute (Settings.trigger_renew_seconds) while it protects something; it
# expires by itself within the hour after a run dies.
TRIGGER_RENEW_SECONDS = 60.0
Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def trigger_holds(store: StateStore, run_id: str, run: RunRecord) -> tuple[list[str], list[str]]:
    """(keep, release): the run's triggers it must hold, and the ones it may let go.

    `phase{N}->phase{N+1}` is held while the run has a task of phase N or earlier that is not
    settled (an earlier phase feeds phase N's windows too). After a cancel, "settled" is not
    enough: a cancelled, failed or blocked task of those phases is an incomplete write the
    live side's windows would read, so the pause is kept until the writes are complete
    (`resume`) or someone releases it (`cancel --release-triggers`, `triggers resume --all`).
    """
    tasks = store.tasks(run_id)
    states = store.states(run_id)
    if run.status is RunStatus.cancelled:
        open_phases = {t.phase for i, t in tasks.items()
                       if states.get(i) not in (TaskStatus.success, TaskStatus.partial, TaskStatus.skipped)}
    else:
        open_phases = {t.phase for i, t in tasks.items() if i in states and not states[i].finished}
    low = min(open_phases, default=None)
    names = {t.phase: n for t in tasks.values() for n in trigger_names([t])}
    keep = [names[p] for p in sorted(names) if low is not None and low <= p]
    return keep, [names[p] for p in sorted(names) if names[p] not in keep]


def keep_triggers(store: StateStore, run_id: str, triggers: TriggerPauser | None, settings: Settings,
                  run: RunRecord | None = None, *, force: bool = False) -> list[str] | None:
    """Renew the pauses the run must hold, release the others; at most once per
    `trigger_renew_seconds` per run across every watchdog (a Redis mutex), unless `force`.

    Only renews: a pause someone force-released (`triggers resume --all`) stays released, as
    the operator asked. Returns the triggers still held, or None when skipped (renewed lately).
    """
    run = run or store.get_run(run_id)
    if triggers is None or run is None:
        return None
    if not force and not store.try_lock(run_id, "triggers", settings.trigger_renew_seconds * 0.9):
        return None
    keep, release = trigger_holds(store, run_id, run)
    held = [name for name in keep if triggers.renew(name, run_id, settings.trigger_lease_seconds)]
    for name in release:
        triggers.release(name, run_id)
    return held


def window_of(run: RunRecord) -> ExecutionWindow | None:
    """The run's execution window (`enqueue --window`), or None."""
    data = run.request.get("window")
    return ExecutionWindow.from_json(data) if data else None


def apply_window(store: StateStore, dispatcher: Dispatcher, run: RunRecord, settings: Settings,
                 at: dt.datetime) -> str | None:
    """Hold a windowed run to its window at `at`: pause it when the window is shut, resume it
    (and send what is ready) when it opens. Returns "paused", "resumed" or None (nothing to do).

    A pause by hand or by a gate is never lifted here: only its own kind.
    """
    window = window_of(run)
    if window is None:
        return None
    if window.is_open(at):
        if run.status is RunStatus.paused and run.pause_kind == PauseKind.window.value:
            if store.unpause_run(run.run_id, [PauseKind.window]):
                send(store, dispatcher, run.run_id, store.pump(run.run_id, settings.dispatch_window))
                log.info("run %s: its window %s opened; resumed", run.run_id, window.describe())
                return "resumed"
        return None
    if run.status is RunStatus.running:
        opens = window.next_open(at).astimezone(window.zone)
        reason = f"outside its window {window.describe()}; opens {opens:%a %Y-%m-%d %H:%M} {window.tz}"
        if store.pause_run(run.run_id, PauseKind.window, "window", reason, at.timestamp()):
            log.info("run %s: %s", run.run_id, reason)
            return "paused"
    return None


def gate(store: StateStore, dispatcher: Dispatcher, run_id: str, open_count: int, settings: Settings,
         warehouse: WarehouseSource, *, force: bool = False) -> bool | None:
    """A gated run whose gated season just completed: validate it, then let the next season
    through or pause the run (`backfill.gates`). Once per season and sequence (a claim), unless
    `force` (a `resume` after a fix by hand). Returns True (passed), False (failed) or None (nothing to do)."""
    from backfill import gates

    run = store.get_run(run_id)
    if run is None or not gates.due(run, open_count) or not gates.season_done(store, run):
        return None
    guard = f"gate:{run.seq}:{run.gate_season}"
    if not force and not store.claim(run_id, guard, 600.0):
        return None
    wh = warehouse()
    if wh is None:
        store.unclaim(run_id, guard)
        return None
    try:
        flush_history(store, wh, run_id, wait=FLUSH_LOCK_SECONDS)  # success rates read the run history
        passed, summary, findings = gates.validate_season(store, run, wh)
    except Exception:
        store.unclaim(run_id, guard)
        raise
    if passed:
        gates.advance(store, run, summary)
        send(store, dispatcher, run_id, store.pump(run_id, settings.dispatch_window))
        log.info("run %s: %s; the next season starts", run_id, summary)
    else:
        gates.close(store, run, summary, findings, now())
    store.complete(run_id, guard)
    return passed


def release_kept_triggers(store: StateStore, run_id: str, triggers: TriggerPauser | None) -> list[str]:
    """Release the trigger pauses a cancelled run kept over its incomplete writes; returns the names it held."""
    tasks = store.tasks(run_id)
    released = [name for name in trigger_names(tasks.values())
                if triggers is not None and triggers.release(name, run_id)]
    store.deactivate(run_id)
    return released


def pause(store: StateStore, run_id: str, by: str, reason: str = "") -> RunRecord:
    """Pause a run by hand: running tasks finish, nothing new starts, its trigger pauses and
    partition locks are kept, the watchdog does not call it stalled. `resume` continues it."""
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id} in Redis", hint="`backfill runs` lists the known runs")
    if not run.status.active:
        raise BadInput(f"run {run_id} is {run.status.value}, not running",
                       hint="only a running run can be paused; `backfill retry` or `resume` restarts a finished one")
    if run.status is RunStatus.paused and run.pause_kind == PauseKind.manual.value:
        return run
    store.pause_run(run_id, PauseKind.manual, by, reason or "paused by hand", now())
    return store.get_run(run_id) or run
