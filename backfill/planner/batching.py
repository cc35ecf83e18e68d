"""How many game dates each task of a processor covers: a cost model, pure, no I/O.

A task costs a fixed amount per job (dispatch, queueing, parsing, reading the lookback window,
committing the write) plus an amount per date it computes. Batching divides the fixed part by
the batch size, but a bigger batch is a longer task: downstream batches wait longer for it
(the critical path grows by the extra dates of every batch along the processor chain) and
fewer tasks leave slots idle. The model chooses, per processor, the size that minimises
Graham's list-scheduling bound on the makespan,

    T(k) = W(k) / C + (1 - 1/C) * CP(k)

where W is the total work (fixed costs of all tasks plus every date's cost), CP the longest
chain of one batch per processor through the processor graph, and C the concurrency the
warehouse can really use (DuckDB has one writer, so C = 1 and T = W: one task per processor
and season). Any list schedule, and so dependency-driven dispatch, finishes within T, so
minimising T trades per-job overhead against keeping C slots busy without guessing.

Hard limits narrow the choice before the model picks: a self-dependent processor reads its
own earlier dates, so it stays at 1; the spec's `batch_size` is an upper bound; BigQuery's
table operations per table per day give a lower bound (fewer, larger jobs) and
`maximum_bytes_billed` an upper bound (a batch scans about its dates' bytes). Batches never
cross a season.

Constants come from the run history when there is one (`calibrate`), else from the
warehouse's profile applied to the spec's `estimate_seconds` (the users' per-date figures).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backfill.spec import PipelineSpec

MAX_BATCH_DATES = 366  # one season at most; batches never cross a season anyway
SIZE_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 366)


@dataclass(frozen=True)
class Cost:
    """Seconds of one task of a processor: `fixed_seconds + dates * per_date_seconds`."""

    fixed_seconds: float
    per_date_seconds: float
    source: str = "profile"  # "profile" (spec estimate scaled by the warehouse profile) or "history"
    samples: int = 0

    def task_seconds(self, dates: int) -> float:
        return self.fixed_seconds + dates * self.per_date_seconds

    def to_json(self) -> dict[str, Any]:
        return {"fixed_seconds": round(self.fixed_seconds, 4), "per_date_seconds": round(self.per_date_seconds, 5),
                "source": self.source, "samples": self.samples}


@dataclass(frozen=True)
class WarehouseProfile:
    """What a warehouse charges per job and per date, and the limits it imposes on jobs.

    `fixed_share` / `date_share` split a spec `estimate_seconds` (a standalone one-date job, as
    the users measured them) into the fixed and the per-date part; `task_overhead_seconds` is
    the engine's own cost per task (Redis state, Celery messages), which history does not see.
    """

    kind: str = "generic"
    fixed_share: float = 0.0
    date_share: float = 1.0
    task_overhead_seconds: float = 0.0
    max_concurrent_jobs: int | None = None
    table_jobs_per_day: int | None = None
    table_jobs_share: float = 1.0
    maximum_bytes_billed: int | None = None
    bytes_per_date: Mapping[str, int] = field(default_factory=dict)
    why_concurrency: str = ""

    def default_cost(self, estimate_seconds: float) -> Cost:
        return Cost(self.task_overhead_seconds + self.fixed_share * estimate_seconds,
                    self.date_share * estimate_seconds)

    def effective_concurrency(self, concurrency: int) -> int:
        return max(1, min(concurrency, self.max_concurrent_jobs or concurrency))

    def table_job_budget(self) -> int | None:
        if self.table_jobs_per_day is None:
            return None
        return max(1, int(self.table_jobs_per_day * self.table_jobs_share))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_concurrent_jobs": self.max_concurrent_jobs,
                "table_jobs_per_day": self.table_jobs_per_day, "table_jobs_budget": self.table_job_budget(),
                "maximum_bytes_billed": self.maximum_bytes_billed}


# No knowledge of the warehouse: the spec estimate is all per-date work, so batching buys nothing.
GENERIC = WarehouseProfile()
# Embedded DuckDB: one process writes, so tasks serialise; a task costs ~30 ms of engine and
# warehouse overhead (333 s for 10,200 one-date tasks) and ~1 ms per date of set-based SQL
# (9.9 s for the same dates as 50 tasks), i.e. the spec's BigQuery seconds / 30,000.
DUCKDB = WarehouseProfile(kind="duckdb", fixed_share=0.0, date_share=1 / 30000, task_overhead_seconds=0.03,
                          max_concurrent_jobs=1, why_concurrency="DuckDB has one writer")
# BigQuery: most of a one-date job is fixed (queueing, slot start, re-reading the window's
# 10-30 partitions that the neighbouring dates also read, the commit); 100 concurrent
# interactive queries per project; 1,500 table operations per table per day, of which the
# backfill takes half so the live pipeline and retries keep the rest.
BIGQUERY = WarehouseProfile(kind="bigquery", fixed_share=2 / 3, date_share=1 / 3, task_overhead_seconds=0.05,
                            max_concurrent_jobs=100, table_jobs_per_day=1500, table_jobs_share=0.5,
                            why_concurrency="BigQuery runs at most 100 interactive queries per project")
PROFILES = {p.kind: p for p in (GENERIC, DUCKDB, BIGQUERY)}


def calibrate(samples: Iterable[tuple[str, int, float]], profile: WarehouseProfile,
              estimates: Mapping[str, float]) -> dict[str, Cost]:
    """Costs per processor from (processor, dates in the task, seconds) of earlier successful tasks.

    With two or more batch sizes, a least-squares line through (dates, seconds) separates the
    fixed from the per-date cost. With one size only the two cannot be told apart, so the
    profile's split for that processor is scaled to match the median measured task.
    """
    by_proc: dict[str, list[tuple[int, float]]] = {}
    for name, dates, seconds in samples:
        if dates >= 1 and seconds >= 0:
            by_proc.setdefault(name, []).append((dates, seconds))
    out: dict[str, Cost] = {}
    for name, points in by_proc.items():
        prior = profile.default_cost(estimates.get(name, 30.0))
        prior = Cost(prior.fixed_seconds - profile.task_overhead_seconds, prior.per_date_seconds)
        fit = _line(points)
        if fit is not None:
            fixed, per_date = fit
        else:
            dates = statistics.median_low(sorted({n for n, _ in points}))
            seconds = statistics.median(s for n, s in points if n == dates)
            expected = prior.task_seconds(dates)
            scale = seconds / expected if expected > 0 else 0.0
            fixed, per_date = prior.fixed_seconds * scale, prior.per_date_seconds * scale
            if expected <= 0:
                per_date = seconds / dates
        out[name] = Cost(fixed + profile.task_overhead_seconds, per_date, "history", len(points))
    return out


def _line(points: Sequence[tuple[int, float]]) -> tuple[float, float] | None:
    """(intercept, slope) >= 0 of the least-squares line, or None if sizes do not vary enough."""
    xs = [float(n) for n, _ in points]
    if len(set(xs)) < 2:
        return None
    mx = statistics.fmean(xs)
    my = statistics.fmean(s for _, s in points)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (s - my) for x, (_, s) in zip(xs, points, strict=True)) / sxx
    if slope <= 0:
        return None
    intercept = my - slope * mx
    if intercept < 0:
        return 0.0, my / mx
    return intercept, slope


@dataclass(frozen=True)
class Bounds:
    lo: int
    hi: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class BatchChoice:
    """The size chosen for one processor and why; shown by `plan` and stored in `plan --json`."""

    processor: str
    size: int
    tasks: int
    dates: int
    cost: Cost
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "tasks": self.tasks, "dates": self.dates, "cost": self.cost.to_json(),
                "reasons": list(self.reasons)}


def chunk_sizes(n: int, size: int) -> list[int]:
    """`n` dates in ceil(n / size) batches of nearly equal length (no short tail batch)."""
    if n <= 0:
        return []
    m = -(-n // max(size, 1))
    base, extra = divmod(n, m)
    return [base + 1] * extra + [base] * (m - extra)


def _tasks(per_season: Iterable[int], size: int) -> int:
    return sum(-(-n // size) for n in per_season if n)


def _longest(per_season: Iterable[int], size: int) -> int:
    return max((max(chunk_sizes(n, size)) for n in per_season if n), default=0)


def makespan_bound(sizes: Mapping[str, int], dates: Mapping[str, Mapping[str, int]], costs: Mapping[str, Cost],
                   upstream: Mapping[str, Sequence[str]], order: Sequence[str], concurrency: int) -> float:
    """Graham's bound W/C + (1 - 1/C) * CP for these batch sizes (seconds)."""
    work = 0.0
    finish: dict[str, float] = {}
    for name in order:
        per_season = dates[name].values()
        cost = costs[name]
        work += _tasks(per_season, sizes[name]) * cost.fixed_seconds + sum(per_season) * cost.per_date_seconds
        longest = cost.task_seconds(_longest(per_season, sizes[name]))
        finish[name] = longest + max((finish[u] for u in upstream.get(name, ()) if u in finish), default=0.0)
    cp = max(finish.values(), default=0.0)
    return work / concurrency + (1 - 1 / concurrency) * cp


def choose_batches(order: Sequence[str], dates: Mapping[str, Mapping[str, int]], costs: Mapping[str, Cost],
                   upstream: Mapping[str, Sequence[str]], bounds: Mapping[str, Bounds],
                   concurrency: int) -> dict[str, int]:
    """Per-processor sizes inside `bounds` minimising `makespan_bound` (coordinate descent).

    `order` is topological; `dates` is processor -> season -> number of dates to compute.
    """
    longest = {n: max(dates[n].values(), default=1) or 1 for n in order}

    def clamp(name: str, size: int) -> int:
        b = bounds[name]
        return max(b.lo, min(b.hi, longest[name], size))

    def cost_of(candidate: Mapping[str, int]) -> float:
        return makespan_bound(candidate, dates, costs, upstream, order, concurrency)

    steps = sorted(set(SIZE_STEPS) | set(longest.values()))
    sizes = {n: clamp(n, MAX_BATCH_DATES) for n in order}
    best_t = cost_of(sizes)
    for _ in range(12):
        changed = False
        # Joint move: cap every size at one value. Parallel chains share the critical path, so
        # shrinking one processor alone often cannot shorten it; capping them all can.
        for cap in steps:
            trial = {n: clamp(n, min(sizes[n], cap)) for n in order}
            t = cost_of(trial)
            if t < best_t - 1e-9:
                sizes, best_t, changed = trial, t, True
        for name in order:
            for size in sorted({clamp(name, s) for s in steps}):
                trial = {**sizes, name: size}
                t = cost_of(trial)
                if t < best_t - 1e-9:
                    sizes, best_t, changed = trial, t, True
        if not changed:
            break
    return sizes


def min_size_for_budget(per_season: Sequence[int], budget: int) -> int:
    """Smallest size whose batches, over all seasons, number at most `budget` jobs."""
    size = max(1, -(-sum(per_season) // budget))
    while _tasks(per_season, size) > budget and size < MAX_BATCH_DATES:
        size += 1
    return size


def parse_batch(value: str | int | None) -> int | str | None:
    """`auto`, a whole number >= 1, or None (each processor's spec `batch_size`)."""
    if value is None or value == "auto":
        return value
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"batch {value!r} must be `auto` or a whole number >= 1") from None
    if n < 1 or (isinstance(value, float) and value != n):
        raise ValueError(f"batch {value!r} must be `auto` or a whole number >= 1")
    return n


def decide(spec: PipelineSpec, selected: Sequence[str], dates: Mapping[str, Mapping[str, int]], *,
           batch: int | str | None, overrides: Mapping[str, int], profile: WarehouseProfile,
           costs: Mapping[str, Cost], durations: Mapping[str, float], concurrency: int) -> dict[str, BatchChoice]:
    """The batch size of every selected processor, with the reasons `plan` shows.

    `batch` None keeps each spec `batch_size` (1 unless set); an int fixes every size; "auto"
    asks the model, inside the spec's upper bound and the warehouse's limits. `overrides`
    (per processor) and self-dependency win over everything.
    """
    batch = parse_batch(batch)
    cost = {n: costs.get(n) or profile.default_cost(durations.get(n, spec.processors[n].estimate_seconds))
            for n in selected}
    c_eff = profile.effective_concurrency(concurrency)
    bounds: dict[str, Bounds] = {}
    fixed: dict[str, tuple[int, str]] = {}
    budget = profile.table_job_budget()
    for name in selected:
        proc = spec.processors[name]
        per_season = [n for n in dates[name].values() if n]
        if proc.self_dependent:
            fixed[name] = (1, "reads its own earlier dates: one date per task")
        elif name in overrides:
            fixed[name] = (overrides[name], f"batch size {overrides[name]} requested for this processor")
        elif isinstance(batch, int):
            fixed[name] = (batch, f"--batch {batch}")
        elif batch is None:
            fixed[name] = (proc.batch_size or 1, f"spec batch_size {proc.batch_size}" if proc.batch_size
                           else "no batch size asked for: one date per task")
        if name in fixed:
            continue
        lo, hi, why = 1, MAX_BATCH_DATES, []
        if proc.batch_size:
            hi = proc.batch_size
            why.append(f"spec batch_size {proc.batch_size} is the upper bound")
        per_date_bytes = profile.bytes_per_date.get(name)
        if profile.maximum_bytes_billed and per_date_bytes:
            cap = max(1, profile.maximum_bytes_billed // per_date_bytes)
            if cap < hi:
                hi = cap
                why.append(f"maximum_bytes_billed {profile.maximum_bytes_billed:,} allows {cap} dates "
                           f"of ~{per_date_bytes:,} bytes")
        if budget is not None and per_season:
            need = min_size_for_budget(per_season, budget)
            if need > 1:
                lo = min(need, hi)
                why.append(f"at least {need} dates per job keeps {proc.target} under {budget} of its "
                           f"{profile.table_jobs_per_day:,} table jobs per day")
        bounds[name] = Bounds(lo, max(lo, hi), tuple(why))
    upstream = {n: [d.source for d in spec.processors[n].upstream_processors if d.source != n and d.source in dates]
                for n in selected}
    for name, (size, _) in fixed.items():
        bounds[name] = Bounds(size, size, ())
    sizes = choose_batches(selected, dates, cost, upstream, bounds, c_eff)
    out: dict[str, BatchChoice] = {}
    for name in selected:
        per_season = list(dates[name].values())
        size = sizes[name]
        if name in fixed:
            reasons: tuple[str, ...] = (fixed[name][1],)
        else:
            longest = max(per_season, default=0)
            model = (f"cost model: {cost[name].fixed_seconds:.3g} s per job + {cost[name].per_date_seconds:.3g} s "
                     f"per date ({cost[name].source}) at {c_eff} concurrent job(s)")
            if c_eff < concurrency and profile.why_concurrency:
                model += f" ({profile.why_concurrency})"
            if size >= longest and size < bounds[name].hi:
                model += ": a whole season per task"
            elif size > bounds[name].lo and size < min(bounds[name].hi, longest):
                model += f": {size} balances per-job overhead against the critical path"
            reasons = (*bounds[name].reasons, model)
        out[name] = BatchChoice(name, size, _tasks(per_season, size) if size else 0, sum(per_season),
                                cost[name], reasons)
    return out
