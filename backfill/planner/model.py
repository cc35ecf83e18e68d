"""Frozen plan data: the request, the tasks, the waves, the estimates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from backfill.planner.batching import GENERIC, PROFILES, Cost, WarehouseProfile

ORDERS = ("recent-first", "chronological")
TaskKey = tuple[str, dt.date]


def task_id(processor: str, date: dt.date) -> str:
    return f"{processor}@{date.isoformat()}"


def parse_task_id(tid: str) -> TaskKey:
    processor, _, day = tid.partition("@")
    return processor, dt.date.fromisoformat(day)


@dataclass(frozen=True)
class PlanRequest:
    """What to backfill. Everything optional narrows the selection.

    `batch`: None keeps each processor's spec `batch_size`, "auto" lets the cost model choose
    (`batching.py`), an int fixes every processor's size. `profile` and `costs` feed that model
    and the estimates; the CLI fills them from the warehouse and its run history.
    """

    ranges: tuple[tuple[dt.date, dt.date], ...]
    phases: frozenset[int] | None = None
    processors: frozenset[str] | None = None
    seasons: frozenset[str] | None = None
    season_types: frozenset[str] | None = None
    order: str = "recent-first"
    concurrency: int = 8
    force: bool = False
    batch_sizes: Mapping[str, int] = field(default_factory=dict)
    completed: frozenset[TaskKey] = frozenset()
    # The part of `completed` whose success was written by the users' own code (history names).
    adopted: frozenset[TaskKey] = frozenset()
    durations: Mapping[str, float] = field(default_factory=dict)
    batch: int | str | None = None
    profile: WarehouseProfile = GENERIC
    costs: Mapping[str, Cost] = field(default_factory=dict)
    with_upstream: bool = False  # also plan the upstream partitions the windows read that are not done
    verify_existing: bool = False  # hold adopted partitions to `expect:` before skipping them

    def to_json(self) -> dict[str, Any]:
        return {
            "ranges": [[a.isoformat(), b.isoformat()] for a, b in self.ranges],
            "phases": sorted(self.phases) if self.phases else None,
            "processors": sorted(self.processors) if self.processors else None,
            "seasons": sorted(self.seasons) if self.seasons else None,
            "season_types": sorted(self.season_types) if self.season_types else None,
            "order": self.order,
            "concurrency": self.concurrency,
            "force": self.force,
            "batch_sizes": dict(self.batch_sizes),
            "batch": self.batch,
            "warehouse": self.profile.kind,
            "with_upstream": self.with_upstream,
            "verify_existing": self.verify_existing,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], **extra: Any) -> PlanRequest:
        def fs(v: Any) -> frozenset[Any] | None:
            return frozenset(v) if v else None

        return cls(
            ranges=tuple((dt.date.fromisoformat(a), dt.date.fromisoformat(b)) for a, b in data["ranges"]),
            phases=fs(data.get("phases")), processors=fs(data.get("processors")), seasons=fs(data.get("seasons")),
            season_types=fs(data.get("season_types")), order=data.get("order", "recent-first"),
            concurrency=int(data.get("concurrency", 8)), force=bool(data.get("force", False)),
            batch_sizes=dict(data.get("batch_sizes") or {}), batch=data.get("batch"),
            profile=PROFILES.get(data.get("warehouse") or "generic", GENERIC),
            with_upstream=bool(data.get("with_upstream", False)),
            verify_existing=bool(data.get("verify_existing", False)), **extra)


@dataclass(frozen=True)
class Task:
    """One processor over one date, or over a batch of consecutive game dates of one season."""

    id: str
    processor: str
    phase: int
    season: str
    dates: tuple[dt.date, ...]
    depends_on: tuple[str, ...]
    bootstrap: bool
    wave: int
    estimate_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "processor": self.processor, "phase": self.phase, "season": self.season,
            "dates": [d.isoformat() for d in self.dates], "depends_on": list(self.depends_on),
            "bootstrap": self.bootstrap, "wave": self.wave, "estimate_seconds": self.estimate_seconds,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Task:
        return cls(d["id"], d["processor"], int(d["phase"]), d["season"],
                   tuple(dt.date.fromisoformat(x) for x in d["dates"]), tuple(d["depends_on"]),
                   bool(d["bootstrap"]), int(d["wave"]), float(d["estimate_seconds"]))


@dataclass(frozen=True)
class Estimates:
    tasks: int
    waves: int
    total_work_seconds: float
    critical_path_seconds: float
    wall_seconds: float
    sequential_seconds: float
    concurrency: int

    @property
    def speedup(self) -> float:
        return self.sequential_seconds / self.wall_seconds if self.wall_seconds else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks, "waves": self.waves, "concurrency": self.concurrency,
            "total_work_seconds": round(self.total_work_seconds, 1),
            "critical_path_seconds": round(self.critical_path_seconds, 1),
            "wall_seconds": round(self.wall_seconds, 1),
            "sequential_seconds": round(self.sequential_seconds, 1),
            "speedup": round(self.speedup, 2),
        }


@dataclass(frozen=True)
class Plan:
    request: PlanRequest
    waves: tuple[tuple[Task, ...], ...]
    estimates: Estimates
    warnings: tuple[str, ...]
    skipped_completed: int = 0
    skipped_adopted: int = 0
    counts: Mapping[str, Any] = field(default_factory=dict)
    batching: Mapping[str, Any] = field(default_factory=dict)

    def tasks(self) -> Iterator[Task]:
        for wave in self.waves:
            yield from wave

    def task_map(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks()}

    def __len__(self) -> int:
        return sum(len(w) for w in self.waves)

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.to_json(),
            "waves": [[t.to_json() for t in wave] for wave in self.waves],
            "estimates": self.estimates.to_json(),
            "warnings": list(self.warnings),
            "counts": dict(self.counts),
            "skipped_completed": self.skipped_completed,
            "skipped_adopted": self.skipped_adopted,
            "batching": dict(self.batching),
        }
