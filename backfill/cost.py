"""What a backfill would cost on BigQuery before it runs: `backfill plan --cost`.

On-demand BigQuery bills the bytes a query scans. A free dry run of one task per processor and
season tells its bytes; scaled by the dates the plan gives that processor in that season, it
estimates the whole plan. Scans follow `@window_start` (pruned to each task's window), so bytes
grow with a task's dates and window, which is why the sample is scaled by dates, not tasks.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from backfill.calendar import Calendar
from backfill.errors import BadInput, WarehouseError
from backfill.executor import window_start
from backfill.outcome import ErrorCategory
from backfill.planner import Plan
from backfill.planner.model import Task
from backfill.spec import PipelineSpec

ON_DEMAND_USD_PER_TIB = 6.25  # BigQuery on-demand list price (US multi-region)
TIB = 2**40


@dataclass(frozen=True)
class ProcessorCost:
    processor: str
    tasks: int
    dates: int
    sampled: tuple[str, ...]  # the dry-run task ids
    sampled_bytes: int
    bytes: int
    usd: float
    skipped: str | None = None  # why no dry run (a python or http processor)

    def to_json(self) -> dict[str, Any]:
        return {"processor": self.processor, "tasks": self.tasks, "dates": self.dates,
                "sampled_tasks": list(self.sampled), "sampled_bytes": self.sampled_bytes,
                "estimated_bytes": self.bytes, "estimated_usd": round(self.usd, 4), "skipped": self.skipped}


@dataclass(frozen=True)
class CostEstimate:
    usd_per_tib: float
    processors: tuple[ProcessorCost, ...] = field(default_factory=tuple)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.processors)

    @property
    def usd(self) -> float:
        return sum(p.usd for p in self.processors)

    def to_json(self) -> dict[str, Any]:
        return {"usd_per_tib": self.usd_per_tib, "estimated_bytes": self.bytes,
                "estimated_usd": round(self.usd, 4), "processors": [p.to_json() for p in self.processors]}


def estimate_cost(plan: Plan, spec: PipelineSpec, warehouse: Any, calendar: Calendar,
                  usd_per_tib: float = ON_DEMAND_USD_PER_TIB) -> CostEstimate:
    """Dry-run one task per processor and season; scale its bytes by the plan's dates."""
    if getattr(warehouse, "kind", "") != "bigquery" or not hasattr(warehouse, "dry_run_bytes"):
        raise BadInput("plan --cost needs a BigQuery warehouse (bigquery://project); DuckDB scans cost nothing")
    groups: dict[str, dict[str, list[Task]]] = defaultdict(lambda: defaultdict(list))
    for t in plan.tasks():
        groups[t.processor][t.season].append(t)
    out = []
    for name in [n for n in spec.order if n in groups]:
        proc = spec.processors[name]
        seasons = groups[name]
        tasks = [t for ts in seasons.values() for t in ts]
        dates = sum(len(t.dates) for t in tasks)
        if proc.kind != "sql":
            out.append(ProcessorCost(name, len(tasks), dates, (), 0, 0, 0.0,
                                     skipped=f"{proc.kind} processor: its work is not a BigQuery query"))
            continue
        sql = proc.sql_text()
        sampled, sampled_bytes, total = [], 0, 0
        missing = None
        for season_tasks in seasons.values():
            sample = max(season_tasks, key=lambda t: (len(t.dates), t.dates))  # the largest: the scan's upper end
            first: dt.date = min(sample.dates)
            params = {**proc.options, "start_date": first, "end_date": max(sample.dates),
                      "window_start": window_start(calendar, proc, sample.dates)}
            try:
                scanned = int(warehouse.dry_run_bytes(sql, params))
            except WarehouseError as exc:
                if exc.category != ErrorCategory.schema_drift:
                    raise
                missing = exc.message
                break

            sampled.append(sample.id)
            sampled_bytes += scanned
            total += round(scanned * sum(len(t.dates) for t in season_tasks) / len(sample.dates))
        if missing is not None:  # an upstream table not written yet: nothing to dry-run against
            out.append(ProcessorCost(name, len(tasks), dates, (), 0, 0, 0.0, skipped=f"cannot dry-run: {missing}"))
            continue
        out.append(ProcessorCost(name, len(tasks), dates, tuple(sampled), sampled_bytes, total,
                                 total / TIB * usd_per_tib))
    return CostEstimate(usd_per_tib, tuple(out))
