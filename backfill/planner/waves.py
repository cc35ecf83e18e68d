"""Group tasks into waves by dependency depth: a task runs one wave after its deepest dependency.

Waves follow depth, not dates, so hundreds of dates share a wave. Inside a wave, tasks are
ordered by the requested season order; the queue is FIFO, so the preferred season's tasks
reach workers first while the other seasons keep every worker busy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from backfill.planner.graph import DraftTask
from backfill.planner.model import Task


def assign_waves(tasks: Sequence[DraftTask]) -> dict[str, int]:
    """Depth of every task; `tasks` must list each task after all of its dependencies."""
    wave: dict[str, int] = {}
    for t in tasks:
        wave[t.id] = 1 + max((wave[d] for d in t.deps), default=-1)
    return wave


def group_waves(tasks: Sequence[DraftTask], wave: Mapping[str, int], estimates: Mapping[str, float],
                order: str, processor_rank: Mapping[str, int]) -> tuple[tuple[Task, ...], ...]:
    count = 1 + max(wave.values(), default=-1)
    buckets: list[list[Task]] = [[] for _ in range(count)]
    for t in tasks:
        buckets[wave[t.id]].append(Task(
            id=t.id, processor=t.processor, phase=t.phase, season=t.season, dates=t.dates,
            depends_on=tuple(sorted(t.deps)), bootstrap=t.bootstrap, wave=wave[t.id],
            estimate_seconds=estimates[t.id]))
    recent = order == "recent-first"

    def key(t: Task) -> tuple[int, int, int]:
        year = int(t.season[:4]) if t.season[:4].isdigit() else 0
        return (-year if recent else year, processor_rank[t.processor], t.dates[0].toordinal())

    return tuple(tuple(sorted(b, key=key)) for b in buckets)
