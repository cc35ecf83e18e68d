"""Progress, derived from task states on every call (never stored, so never stale): counts, rate,
ETA, partial tasks, and whether the run is stalled (which the watchdog heals)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backfill.state import RunRecord, StateStore, TaskStatus
from backfill.state.base import now


def stall(store: StateStore, run_id: str, stall_after: float, run: RunRecord | None = None) -> dict[str, Any] | None:
    """`{since, reason}` when an active run made no progress for `stall_after` seconds, has nothing
    running under a live lease, and no message sent (or retry due) within that time; else None."""
    run = run or store.get_run(run_id)
    if run is None or not run.status.active or store.open_count(run_id) <= 0:
        return None
    moment = now()
    last = max(run.progress_at or run.created_at, run.healed_at or 0.0, run.created_at)
    if moment - last < stall_after or store.live_leases(run_id) > 0:
        return None
    flight = store.inflight(run_id)
    if flight and max(flight.values()) > moment - stall_after:
        return None
    ready = len(store.ready(run_id))
    reason = (f"no task settled for {moment - last:.0f}s and none running; {len(flight)} sent but not picked up"
              f"{f', {ready} ready' if ready else ''} (queue purged, messages revoked or lost, or no worker)")
    return {"since": last, "reason": reason}


def partial_tasks(store: StateStore, run_id: str, states: Mapping[str, TaskStatus] | None = None) -> set[str]:
    """Tasks that settled as written but short of what was expected (their result says `partial`).

    Run state keeps them `succeeded` (their dependents may run: the rows are there), so they are
    told apart by their result, and shown and counted apart from clean successes.
    """
    states = store.states(run_id) if states is None else states
    done = [i for i, s in states.items() if s is TaskStatus.succeeded]
    return {i for i, r in store.results_by_id(run_id, done).items() if r.get("status") == "partial"}


def progress(store: StateStore, run_id: str, stall_after: float = 30.0) -> dict[str, Any] | None:
    """Counts per status overall and per (phase, season), rate, ETA, and whether the run is stalled.

    A stalled run has no ETA: a rate measured before it stopped would promise a finish that
    is not coming. Tasks waiting for a retry count as remaining.
    """
    run = store.get_run(run_id)
    if run is None:
        return None
    tasks = store.tasks(run_id)
    states = store.states(run_id)
    counts = {s.value: 0 for s in TaskStatus}
    groups: dict[tuple[int, str], dict[str, int]] = {}
    for tid, st in states.items():
        counts[st.value] += 1
        t = tasks.get(tid)
        if t is not None:
            g = groups.setdefault((t.phase, t.season), {s.value: 0 for s in TaskStatus})
            g[st.value] += 1
    results = store.results(run_id)
    partial = {i for i, r in results.items() if r.get("status") == "partial" and states.get(i) is TaskStatus.succeeded}
    counts["partial"] = len(partial)
    counts["succeeded"] -= len(partial)
    for tid in partial:
        t = tasks.get(tid)
        if t is not None:
            g = groups[(t.phase, t.season)]
            g["succeeded"] -= 1
            g["partial"] = g.get("partial", 0) + 1
    for g in groups.values():
        g.setdefault("partial", 0)
    done = counts["succeeded"] + counts["skipped"]
    settled = sum(counts[s.value] for s in TaskStatus if s.finished)
    moment = now()
    end = run.finished_at or moment
    elapsed = max(end - run.created_at, 1e-6)
    rate = (done + counts["partial"]) / elapsed
    remaining = len(states) - settled
    flight = store.inflight(run_id) if run.status.active else {}
    waiting_retry = sum(1 for t, due in flight.items() if due > moment and states.get(t) is TaskStatus.pending)
    stalled = stall(store, run_id, stall_after, run) if run.status.active else None
    failures = [{"task_id": tid, "category": r.get("error_category"), "message": r.get("error_message")}
                for tid, r in sorted(results.items()) if states.get(tid) == TaskStatus.failed]
    partials = [{"task_id": tid, "category": results[tid].get("error_category"),
                 "message": results[tid].get("error_message")} for tid in sorted(partial)]
    unresolved = sum(int(r.get("unresolved_players") or 0) for r in results.values())
    return {
        "run_id": run_id, "status": run.status.value, "pipeline": run.pipeline, "request": run.request,
        "created_at": run.created_at, "finished_at": run.finished_at, "cancelled_at": run.cancelled_at,
        "seq": run.seq, "waves": run.waves, "total": len(states), "done": done,
        "settled": settled, "counts": counts, "elapsed_seconds": round(elapsed, 1),
        "rate_per_minute": round(rate * 60, 2),
        "eta_seconds": round(remaining / rate, 1) if rate > 0 and run.status.active and not stalled else None,
        "in_flight": len(flight), "waiting_retry": waiting_retry,
        "progress_at": run.progress_at, "stalled": stalled,
        "healed": {"count": run.healed, "at": run.healed_at, "reason": run.heal_reason or None},
        "resent": run.resent,
        "by_phase_season": [{"phase": p, "season": s, **c} for (p, s), c in sorted(groups.items())],
        "failures": failures, "partials": partials, "unresolved_players": unresolved,
    }
