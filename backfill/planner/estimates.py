"""How long a plan should take: total work, critical path, wall time with wave barriers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from backfill.planner.batching import Cost
from backfill.planner.graph import DraftTask
from backfill.planner.model import Estimates, Task


def task_estimates(tasks: Sequence[DraftTask], costs: Mapping[str, Cost]) -> dict[str, float]:
    """Seconds per task from the batching cost model (history beats the spec's guess)."""
    return {t.id: costs[t.processor].task_seconds(len(t.dates)) for t in tasks}


def critical_path(tasks: Sequence[DraftTask], est: Mapping[str, float]) -> float:
    finish: dict[str, float] = {}
    for t in tasks:
        finish[t.id] = est[t.id] + max((finish[d] for d in t.deps), default=0.0)
    return max(finish.values(), default=0.0)


def wave_wall_time(waves: Sequence[Sequence[Task]], concurrency: int) -> float:
    """Each wave ends when its slowest lane does: at least its longest task, at least work / lanes."""
    total = 0.0
    for wave in waves:
        if not wave:
            continue
        work = sum(t.estimate_seconds for t in wave)
        total += max(max(t.estimate_seconds for t in wave), work / concurrency)
    return total


def estimate(tasks: Sequence[DraftTask], waves: Sequence[Sequence[Task]], est: Mapping[str, float],
             concurrency: int) -> Estimates:
    total = sum(est.values())
    return Estimates(
        tasks=len(tasks), waves=len(waves), total_work_seconds=total,
        critical_path_seconds=critical_path(tasks, est), wall_seconds=wave_wall_time(waves, concurrency),
        sequential_seconds=total, concurrency=concurrency)
