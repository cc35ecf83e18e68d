"""Failed and partial runs that a later run made good: `runs` says so instead of `failed` forever.

A test week that failed on upstream holes is usually fixed by a new run (`enqueue
--with-upstream`, or the `gaps` command), not by `retry`: the failed run stays `failed` in
Redis, which reads like work still to do. A failed (or partial) run is *superseded* when every
partition its failed, blocked, revoked, cancelled (or partial) tasks cover later succeeded (not
partial) in a newer run. Read from run state alone, so `runs` still needs Redis only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from backfill.state import RunRecord, RunStatus, StateStore, TaskStatus

_UNDONE = frozenset({TaskStatus.failed, TaskStatus.blocked, TaskStatus.revoked, TaskStatus.cancelled,
                     TaskStatus.partial})
_ENDED_SHORT = frozenset({RunStatus.failed, RunStatus.partial})


def superseded_by(store: StateStore, records: Sequence[RunRecord]) -> dict[str, str]:
    """failed or partial run id -> the oldest newer run that completed the last of its undone partitions.

    `records` newest first (as `list_runs` gives them); runs older than the oldest failed one
    are never read.
    """
    failed = [i for i, r in enumerate(records) if r.status in _ENDED_SHORT]
    if not failed:
        return {}
    done_in: dict[tuple[str, dt.date], str] = {}  # partition -> the oldest newer run that succeeded it
    out: dict[str, str] = {}
    for record in records[:failed[-1] + 1]:
        states = store.states(record.run_id)
        tasks = store.tasks(record.run_id)
        if record.status in _ENDED_SHORT:
            undone = {(tasks[t].processor, d) for t, s in states.items() if s in _UNDONE and t in tasks
                      for d in tasks[t].dates}
            if undone and all(k in done_in for k in undone):
                out[record.run_id] = max((done_in[k] for k in undone), key=lambda rid: rid)
        for t, s in states.items():
            if s is TaskStatus.success and t in tasks:
                for d in tasks[t].dates:
                    done_in[(tasks[t].processor, d)] = record.run_id  # older runs overwrite: oldest newer
    return out
