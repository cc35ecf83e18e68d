"""A discrete-event simulation of scheduling policies over a real plan (pure: no Redis, no Celery).

Why simulate: a BigQuery-sized backfill takes hours, and what we want to compare is the policy
(what runs when, on C slots), not the machine. Every policy sees the same tasks with the same
durations, so the ratios isolate scheduling:

- `sequential`: the users' strictly sequential plan, one (processor, date) job at a time,
  date by date (C is irrelevant).
- `fixed_batches`: the users' batches of 10 dates: per phase, the 10 dates' jobs run at once on
  C slots, then a barrier. Jobs that read a partition written inside the same step commit a
  *dependency violation* (they may read it before it is written); we count them.
- `waves`: one global barrier per dependency depth across all seasons (the engine before
  dependency dispatch).
- `dependency`: a task starts as soon as its own upstream tasks are done and a slot is free;
  among ready tasks the preferred season goes first (recent-first), then the task with the
  longest remaining path to the end of the plan.

The workload is BigQuery-like: a task costs `fixed + dates * per_date` seconds of one
processor. Per processor, a one-date job's seconds are drawn around the users' figures (the
spec's `estimate_seconds`, 15-45 s, 2.5 min per date for all ten processors; they measured 2-3
minutes), two thirds fixed (queueing, slot start, re-reading the window, commit).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from backfill.planner import Plan, Task
from backfill.planner.batching import Cost
from backfill.spec import PipelineSpec


@dataclass
class Outcome:
    makespan: float
    finish: dict[str, float] = field(default_factory=dict)
    violations: int = 0

    def season_done(self, tasks: Iterable[Task], season: str) -> float:
        return max((self.finish[t.id] for t in tasks if t.season == season), default=0.0)


def bigquery_like_costs(spec: PipelineSpec, seed: int = 9, fixed_share: float = 2 / 3) -> dict[str, Cost]:
    """Per processor: a one-date job of estimate_seconds x U(0.75, 1.25), `fixed_share` of it fixed."""
    rng = random.Random(seed)
    out = {}
    for name in spec.order:
        one_date = spec.processors[name].estimate_seconds * rng.uniform(0.75, 1.25)
        out[name] = Cost(one_date * fixed_share, one_date * (1 - fixed_share), "simulated")
    return out


def durations(tasks: Iterable[Task], costs: Mapping[str, Cost]) -> dict[str, float]:
    return {t.id: costs[t.processor].task_seconds(len(t.dates)) for t in tasks}


def lower_bound(tasks: Sequence[Task], seconds: Mapping[str, float], slots: int) -> tuple[float, float, float]:
    """(max(critical path, work / C), critical path, work) of these tasks."""
    finish: dict[str, float] = {}
    for t in topological(tasks):
        finish[t.id] = seconds[t.id] + max((finish[d] for d in t.depends_on), default=0.0)
    cp = max(finish.values(), default=0.0)
    work = sum(seconds[t.id] for t in tasks)
    return max(cp, work / slots), cp, work


def topological(tasks: Sequence[Task]) -> list[Task]:
    return sorted(tasks, key=lambda t: (t.wave, t.dates[0]))


def bottom_levels(tasks: Sequence[Task], seconds: Mapping[str, float]) -> dict[str, float]:
    """Longest path from each task's start to the end of the plan (the classic list-scheduling priority)."""
    children: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for d in t.depends_on:
            children[d].append(t.id)
    level: dict[str, float] = {}
    for t in reversed(topological(tasks)):
        level[t.id] = seconds[t.id] + max((level[c] for c in children[t.id]), default=0.0)
    return level


def list_schedule(tasks: Sequence[Task], seconds: Mapping[str, float], slots: int,
                  priority: Callable[[Task], tuple[float, ...]], start: float = 0.0) -> Outcome:
    """Event-driven: whenever a slot frees, start the ready task with the smallest priority key."""
    by_id = {t.id: t for t in tasks}
    waiting = {t.id: sum(1 for d in t.depends_on if d in by_id) for t in tasks}
    children: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for d in t.depends_on:
            if d in by_id:
                children[d].append(t.id)
    ready = [(priority(t), t.id) for t in tasks if waiting[t.id] == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    now, out = start, Outcome(start)
    while ready or running:
        while ready and len(running) < slots:
            _, tid = heapq.heappop(ready)
            heapq.heappush(running, (now + seconds[tid], tid))
        now, tid = heapq.heappop(running)
        out.finish[tid] = now
        for c in children[tid]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (priority(by_id[c]), c))
    out.makespan = now
    return out


def season_rank(tasks: Iterable[Task], order: str) -> dict[str, int]:
    seasons = sorted({t.season for t in tasks}, reverse=order == "recent-first")
    return {s: i for i, s in enumerate(seasons)}


def dependency(plan: Plan, seconds: Mapping[str, float], slots: int, order: str = "recent-first") -> Outcome:
    tasks = list(plan.tasks())
    rank = season_rank(tasks, order)
    level = bottom_levels(tasks, seconds)
    return list_schedule(tasks, seconds, slots, lambda t: (rank[t.season], -level[t.id], t.dates[0].toordinal()))


def waves(plan: Plan, seconds: Mapping[str, float], slots: int) -> Outcome:
    """Each wave starts when the previous one has finished; inside, plan order (FIFO queue)."""
    now, out = 0.0, Outcome(0.0)
    for wave in plan.waves:
        pos = {t.id: float(i) for i, t in enumerate(wave)}

        def fifo(t: Task, pos: Mapping[str, float] = pos) -> tuple[float, ...]:
            return (pos[t.id],)

        step = list_schedule(list(wave), seconds, slots, fifo, start=now)
        out.finish.update(step.finish)
        now = max(now, step.makespan)
    out.makespan = now
    return out


def sequential(plan: Plan, seconds: Mapping[str, float], spec: PipelineSpec, order: str = "recent-first") -> Outcome:
    """One job at a time, season by season in `order`, date by date, processors in spec order."""
    tasks = list(plan.tasks())
    rank = season_rank(tasks, order)
    proc = {n: i for i, n in enumerate(spec.order)}
    now, out = 0.0, Outcome(0.0)
    for t in sorted(tasks, key=lambda t: (rank[t.season], t.dates[0], proc[t.processor])):
        now += seconds[t.id]
        out.finish[t.id] = now
    out.makespan = now
    return out


def fixed_batches(plan: Plan, seconds: Mapping[str, float], slots: int, size: int = 10,
                  order: str = "recent-first") -> Outcome:
    """The users' batches of `size` dates: per (season, batch, phase) all jobs at once, then a barrier."""
    tasks = list(plan.tasks())
    rank = season_rank(tasks, order)
    steps: dict[tuple[int, int, int], list[Task]] = {}
    for season in rank:
        dates = sorted({d for t in tasks if t.season == season for d in t.dates})
        index = {d: i // size for i, d in enumerate(dates)}
        for t in tasks:
            if t.season == season:
                steps.setdefault((rank[season], index[t.dates[0]], t.phase), []).append(t)
    step_of = {t.id: key for key, group in steps.items() for t in group}
    now, out = 0.0, Outcome(0.0)
    for key in sorted(steps):
        group = steps[key]
        out.violations += sum(1 for t in group for d in t.depends_on if step_of.get(d) == key)
        free = {t.id: t for t in group}
        stripped = [Task(t.id, t.processor, t.phase, t.season, t.dates, (), t.bootstrap, 0, t.estimate_seconds)
                    for t in free.values()]  # the users start every job of the step at once
        step = list_schedule(stripped, seconds, slots, lambda t: (t.dates[0].toordinal(),), start=now)
        out.finish.update(step.finish)
        now = max(now, step.makespan)
    out.makespan = now
    return out
