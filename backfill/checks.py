"""Defensive checks before a task writes, and the preflight before a run is enqueued.

The upstream check answers, per date of a task: is every upstream partition inside the declared
windows really there? "There" means its latest record (this run's own state first, then the run
history) is a success or partial, and the partition holds rows unless the schedule says it may
legitimately be empty (a bootstrap date whose own inputs were empty). Nothing here knows Celery
or Redis: the run's own state comes in as a function.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backfill.calendar import Calendar
from backfill.planner.model import TaskKey
from backfill.spec import PipelineSpec, Processor
from backfill.warehouse import Warehouse

UpstreamState = Callable[[Sequence[TaskKey]], Mapping[TaskKey, str]]
OK_STATUSES = ("success", "partial")
DEFAULT_STALE_RUNNING_SECONDS = 6 * 3600.0


@dataclass(frozen=True)
class Gap:
    processor: str
    date: dt.date
    reason: str

    def __str__(self) -> str:
        return f"{self.processor}@{self.date.isoformat()} ({self.reason})"


@dataclass
class DateCheck:
    """The verdict for one date of a task."""

    gaps: list[Gap] = field(default_factory=list)
    coverage: dict[str, tuple[int, int]] = field(default_factory=dict)  # upstream -> (present, needed)
    may_be_empty: bool = False

    def describe_coverage(self) -> str:
        return "; ".join(f"{src}: {have} of {need} game dates" for src, (have, need) in sorted(self.coverage.items())
                         if have < need)


def describe_gaps(gaps: Sequence[Gap], first: int = 5) -> str:
    """`a@d1 (never ran), b@d2 (failed) and 3 more (5 in all)`: the first few and the count."""
    shown = ", ".join(str(g) for g in gaps[:first])
    return shown if len(gaps) <= first else f"{shown} and {len(gaps) - first} more ({len(gaps)} in all)"


class Emptiness:
    """Which (processor, date) partitions may hold few or no rows by the schedule alone.

    A processor that reads only raw data (no processor inputs) has rows on every game date. One
    that reads lookback windows of other processors may legitimately have no row for a team
    whose window is still empty: the season's first `bootstrap_days`, the users' bootstrap
    period. Outside it, an empty partition on a game date is a hole.
    """

    def __init__(self, spec: PipelineSpec, calendar: Calendar) -> None:
        self.spec = spec
        self.calendar = calendar

    def may_be_empty(self, processor: str, day: dt.date) -> bool:
        proc = self.spec.processors[processor]
        if not any(d.source != processor for d in proc.upstream_processors):
            return False
        season = self.calendar.season_of(day) or self.calendar.season_containing(day)
        if season is None:
            return True
        return (day - self.calendar.seasons[season].start).days < self.spec.bootstrap_days


class UpstreamCheck:
    """Run before every task: which upstream partitions of each of its dates are missing."""

    def __init__(self, spec: PipelineSpec, calendar: Calendar, warehouse: Warehouse,
                 in_run: UpstreamState | None = None, *,
                 stale_running_seconds: float = DEFAULT_STALE_RUNNING_SECONDS) -> None:
        self.spec = spec
        self.calendar = calendar
        self.warehouse = warehouse
        self.in_run = in_run
        self.stale_running_seconds = stale_running_seconds
        self.emptiness = Emptiness(spec, calendar)

    def needed(self, proc: Processor, dates: Sequence[dt.date]) -> dict[dt.date, dict[str, set[dt.date]]]:
        """date -> upstream processor -> the partition dates its windows read."""
        own = set(dates)
        out: dict[dt.date, dict[str, set[dt.date]]] = {}
        for d in dates:
            per: dict[str, set[dt.date]] = defaultdict(set)
            for dep in proc.upstream_processors:
                res = self.calendar.resolve(dep.window, d)
                per[dep.source].update(e for e in res.dates if not (dep.source == proc.name and e in own))
            out[d] = dict(per)
        return out

    def check(self, processor: str, dates: Sequence[dt.date]) -> dict[dt.date, DateCheck]:
        proc = self.spec.processors[processor]
        needed = self.needed(proc, dates)
        keys = sorted({(src, e) for per in needed.values() for src, ds in per.items() for e in ds})
        status = self._statuses(keys)
        rows = self._row_counts([k for k in keys if status.get(k, ("", ""))[0] in OK_STATUSES])
        missing: dict[TaskKey, str] = {}
        for k in keys:
            st, why = status.get(k, ("", "never ran"))
            if st not in OK_STATUSES:
                missing[k] = why
            elif rows.get(k, 0) == 0 and not self.emptiness.may_be_empty(*k):
                missing[k] = "0 rows in its table"
        out: dict[dt.date, DateCheck] = {}
        for d in dates:
            verdict = DateCheck(may_be_empty=self.emptiness.may_be_empty(processor, d))
            for src, ds in needed[d].items():
                gone = [e for e in sorted(ds) if (src, e) in missing]
                verdict.gaps.extend(Gap(src, e, missing[(src, e)]) for e in gone)
                verdict.coverage[src] = (len(ds) - len(gone), len(ds))
            out[d] = verdict
        return out

    def _statuses(self, keys: Sequence[TaskKey]) -> dict[TaskKey, tuple[str, str]]:
        """(status, reason when not done): this run's own state first, then the latest history record."""
        out: dict[TaskKey, tuple[str, str]] = {}
        if self.in_run is not None and keys:
            for k, st in self.in_run(keys).items():
                out[k] = (st, f"{st} in this run")
        rest = [k for k in keys if k not in out]
        if rest:
            out.update(self._history(rest))
        return out

    def _history(self, keys: Sequence[TaskKey]) -> dict[TaskKey, tuple[str, str]]:
        table = self.spec.run_history_table
        if not self.warehouse.table_exists(table):
            return {}
        rows = self.warehouse.query(
            f"SELECT processor_name, data_date, status, started_at, finished_at, attempt FROM {table} "
            "WHERE processor_name IN UNNEST(@procs) AND data_date IN UNNEST(@dates)",
            {"procs": sorted({p for p, _ in keys}), "dates": sorted({d for _, d in keys})})
        return latest_statuses(rows, set(keys), self.stale_running_seconds)

    def _row_counts(self, keys: Sequence[TaskKey]) -> dict[TaskKey, int]:
        by_source: dict[str, set[dt.date]] = defaultdict(set)
        for src, d in keys:
            by_source[src].add(d)
        out: dict[TaskKey, int] = {}
        for src, ds in by_source.items():
            proc = self.spec.processors[src]
            if not self.warehouse.table_exists(proc.target):
                continue
            for r in self.warehouse.query(
                    f"SELECT {proc.partition} AS d, COUNT(*) AS n FROM {proc.target} "
                    f"WHERE {proc.partition} IN UNNEST(@dates) GROUP BY 1", {"dates": sorted(ds)}):
                out[(src, _as_date(r["d"]))] = int(r["n"])
        return out


def latest_statuses(rows: Iterable[Mapping[str, Any]], keys: set[TaskKey] | None = None,
                    stale_running_seconds: float = DEFAULT_STALE_RUNNING_SECONDS,
                    now: float | None = None) -> dict[TaskKey, tuple[str, str]]:
    """The latest record per partition, as (status, reason). A `running` record never counts as
    done; a stale one (older than `stale_running_seconds`, its writer long gone) is ignored
    altogether, so it can neither block nor pass a check."""
    moment = time.time() if now is None else now
    best: dict[TaskKey, tuple[tuple[float, int], str]] = {}
    for r in rows:
        key = (str(r["processor_name"]), _as_date(r["data_date"]))
        if keys is not None and key not in keys:
            continue
        st = str(r["status"])
        when = _stamp(r.get("finished_at")) or _stamp(r.get("started_at")) or 0.0
        if st == "running" and moment - (_stamp(r.get("started_at")) or when) > stale_running_seconds:
            continue
        rank = (when, int(r.get("attempt") or 0))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, st)
    reasons = {"running": "still running elsewhere", "failed": "failed", "blocked": "blocked",
               "revoked": "revoked", "cancelled": "cancelled"}
    return {k: (st, reasons.get(st, st)) for k, (_, st) in best.items()}


def _stamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
