"""What an execution log says, as plain data: the same objects feed Markdown, `--json` and HTML.

Everything here is derived on demand from run state and the run history (never stored), so
a report written after a retry or a later run tells the current truth, like `status` does.
Times are epoch seconds (UTC); renderers format them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from backfill.report.validations import Validation

# Heat-map classes, in legend order; every partition of the selection is in exactly one.
COVERAGE = ("succeeded", "partial", "failed", "blocked", "stale", "never ran")
TASK_STATUSES = ("succeeded", "partial", "failed", "blocked", "revoked", "cancelled", "skipped", "running",
                 "pending")


@dataclass
class TaskFact:
    """One task of a run, as it stands now, with its attempt trail from the run history."""

    id: str
    processor: str
    phase: int
    season: str
    wave: int
    dates: list[str]
    status: str  # one of TASK_STATUSES
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    rows: int = 0
    error_category: str | None = None
    error_message: str | None = None
    warnings: list[str] = field(default_factory=list)
    estimate_seconds: float = 0.0
    failed_attempts: list[dict[str, Any]] = field(default_factory=list)  # {attempt, category, message, at}


@dataclass
class Span:
    """Start and end of a group of tasks (a wave, a season, a phase) and how many it holds."""

    name: str
    tasks: int
    start: float | None
    end: float | None

    @property
    def seconds(self) -> float | None:
        return None if self.start is None or self.end is None else max(0.0, self.end - self.start)


@dataclass
class RunFacts:
    run_id: str
    pipeline: str
    request: dict[str, Any]
    status: str
    source: str  # "redis" (live state + history) or "history" (Redis no longer holds the run)
    created_at: float
    finished_at: float | None
    seq: int = 0
    alerts: str = "digest"
    strict: bool = True
    resent: int = 0
    healed: int = 0
    heal_reason: str = ""
    waves: int = 0
    tasks: list[TaskFact] = field(default_factory=list)
    throttle: list[dict[str, Any]] = field(default_factory=list)
    digest: dict[str, Any] | None = None
    alert_status: dict[str, Any] | None = None
    triggers: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(t.status for t in self.tasks)
        return {s: c.get(s, 0) for s in TASK_STATUSES}

    def by_phase_season(self) -> list[dict[str, Any]]:
        groups: dict[tuple[int, str], Counter[str]] = {}
        for t in self.tasks:
            groups.setdefault((t.phase, t.season), Counter())[t.status] += 1
        return [{"phase": p, "season": s, **{k: c.get(k, 0) for k in TASK_STATUSES}}
                for (p, s), c in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))]

    def spans(self, key: str) -> list[Span]:
        """Real start/end per wave, season or phase, from the tasks' own start and finish times."""
        groups: dict[Any, list[TaskFact]] = {}
        for t in self.tasks:
            groups.setdefault(getattr(t, key), []).append(t)
        out = []
        for name, ts in sorted(groups.items(), key=lambda kv: (kv[0] if key != "season" else str(kv[0]))):
            starts = [t.started_at for t in ts if t.started_at is not None]
            ends = [t.finished_at for t in ts if t.finished_at is not None]
            out.append(Span(str(name), len(ts), min(starts) if starts else None, max(ends) if ends else None))
        return out

    def started(self) -> float | None:
        starts = [t.started_at for t in self.tasks if t.started_at is not None]
        return min(starts) if starts else None

    def ended(self) -> float | None:
        ends = [t.finished_at for t in self.tasks if t.finished_at is not None]
        return self.finished_at or (max(ends) if ends else None)

    def retried(self) -> list[TaskFact]:
        return [t for t in self.tasks if t.attempts > 1 or t.failed_attempts]

    def estimate(self) -> dict[str, float]:
        """The plan's estimate (waves as barriers at the run's concurrency) next to what happened."""
        from backfill.planner.estimates import wave_wall_time
        from backfill.planner.model import Task

        concurrency = int(self.request.get("concurrency") or 8)
        waves: dict[int, list[Task]] = {}
        for t in self.tasks:
            waves.setdefault(t.wave, []).append(Task(t.id, t.processor, t.phase, t.season, (), (), False, t.wave,
                                                     t.estimate_seconds))
        work = sum(t.estimate_seconds for t in self.tasks)
        processing = sum((t.finished_at - t.started_at) for t in self.tasks
                         if t.started_at is not None and t.finished_at is not None)
        end = self.ended()
        return {"concurrency": concurrency,
                "estimated_wall_seconds": round(wave_wall_time([waves[k] for k in sorted(waves)], concurrency), 1),
                "estimated_work_seconds": round(work, 1),
                "actual_wall_seconds": round(end - self.created_at, 1) if end is not None else 0.0,
                "actual_task_seconds": round(processing, 1)}

    def game_dates(self) -> list[str]:
        return sorted({d for t in self.tasks for d in t.dates})

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "pipeline": self.pipeline, "request": self.request, "status": self.status,
                "source": self.source, "created_at": _iso(self.created_at), "finished_at": _iso(self.finished_at),
                "seq": self.seq, "alerts": self.alerts, "strict": self.strict, "resent": self.resent,
                "healed": self.healed, "heal_reason": self.heal_reason or None, "waves": self.waves,
                "counts": self.counts(), "by_phase_season": self.by_phase_season(),
                "timeline": {k: [{**asdict(s), "start": _iso(s.start), "end": _iso(s.end), "seconds": s.seconds}
                                 for s in self.spans(k)] for k in ("wave", "season", "phase")},
                "estimate": self.estimate(),
                "retried": [{"task_id": t.id, "attempts": t.attempts, "status": t.status,
                             "failed_attempts": t.failed_attempts} for t in self.retried()],
                "throttle": self.throttle, "digest": self.digest, "alerts_status": self.alert_status,
                "triggers": self.triggers,
                "tasks": [{**asdict(t), "started_at": _iso(t.started_at), "finished_at": _iso(t.finished_at)}
                          for t in self.tasks]}


@dataclass
class Coverage:
    """Latest status of every (processor, game date) of the campaign's selection, from the warehouse."""

    processors: list[str]
    dates: list[str]
    cells: dict[tuple[str, str], str]  # (processor, date) -> a COVERAGE class
    detail: dict[tuple[str, str], str] = field(default_factory=dict)  # why, for failed/partial/stale cells

    def counts(self) -> dict[str, dict[str, int]]:
        out = {p: {c: 0 for c in COVERAGE} for p in self.processors}
        for (p, _), c in self.cells.items():
            out[p][c] += 1
        return out

    def missing(self) -> list[tuple[str, str, str]]:
        return [(p, d, c) for (p, d), c in sorted(self.cells.items()) if c != "succeeded"]

    def to_json(self) -> dict[str, Any]:
        return {"processors": self.processors, "dates": self.dates, "counts": self.counts(),
                "cells": [{"processor": p, "date": d, "status": c, **({"detail": self.detail[(p, d)]}
                                                                     if (p, d) in self.detail else {})}
                          for (p, d), c in sorted(self.cells.items())]}


@dataclass
class Selection:
    """What some of the runs asked for: these processors over these ranges (as CLI flags too)."""

    processors: list[str]
    ranges: list[tuple[dt.date, dt.date]]
    flags: str
    seasons: list[str] = field(default_factory=list)  # the runs' --seasons (empty: every season in the ranges)
    season_types: list[str] = field(default_factory=list)  # the runs' --season-types (empty: every type)
    touched: list[str] = field(default_factory=list)  # seasons with game dates in the selection
    days: frozenset[str] = frozenset()  # its game dates (ISO), when the schedule is known

    def to_json(self) -> dict[str, Any]:
        return {"processors": self.processors, "ranges": [[a.isoformat(), b.isoformat()] for a, b in self.ranges],
                "seasons": self.seasons, "season_types": self.season_types, "flags": self.flags}


@dataclass
class Campaign:
    """One or more runs read together: the test run, the full run and its retries."""

    runs: list[RunFacts]
    generated_at: float
    warehouse: str
    coverage: Coverage | None = None
    coverage_note: str = ""
    validations: list[Validation] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)  # (why, command)
    selections: list[Selection] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)  # encountered problems and how they ended

    def ranges(self) -> list[tuple[dt.date, dt.date]]:
        return merged_ranges(tuple(dt.date.fromisoformat(x) for x in r) for run in self.runs
                             for r in run.request.get("ranges") or [])

    def to_json(self) -> dict[str, Any]:
        return {"generated_at": _iso(self.generated_at), "warehouse": self.warehouse,
                "ranges": [[a.isoformat(), b.isoformat()] for a, b in self.ranges()],
                "runs": [r.to_json() for r in self.runs],
                "coverage": self.coverage.to_json() if self.coverage else None,
                "coverage_note": self.coverage_note or None,
                "selections": [s.to_json() for s in self.selections],
                "validations": [v.to_json() for v in self.validations],
                "issues": self.issues,
                "commands": [{"why": w, "command": c} for w, c in self.commands]}


def merged_ranges(ranges: Iterable[Sequence[dt.date]]) -> list[tuple[dt.date, dt.date]]:
    out: list[tuple[dt.date, dt.date]] = []
    for lo, hi in sorted((r[0], r[1]) for r in ranges):
        if out and lo <= out[-1][1] + dt.timedelta(days=1):
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")
