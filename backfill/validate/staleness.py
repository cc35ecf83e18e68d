"""Which written partitions no longer reflect the current code or their upstream data.

A partition is `stale` when (a) its processor's code changed since it was written (the run
history records each task's `code_version`), (b) an upstream partition inside its declared
windows was rewritten after it started, or (c) such an upstream partition is itself stale.
Windows are resolved against the schedule, in game dates, exactly as the planner resolves them,
so only the partitions that really read a change are stale (Dagster marks assets stale on a code
or upstream data version change; SQLMesh plans only the intervals a change affects).

The recompute commands cover exactly the stale partitions of the selection, their stale
dependents and the stale upstreams they wait for: nothing more. `enqueue` selects the cross
product of ranges and processors, so processors (in pipeline order) sharing one set of stale
dates form one command, and the commands run one after the other (`--wait &&`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backfill.calendar import Calendar, as_date
from backfill.fingerprint import code_version
from backfill.outcome import TaskOutcome
from backfill.planner.flags import selection_flags
from backfill.planner.model import TaskKey
from backfill.runhistory import RunHistory, stamp
from backfill.spec import PipelineSpec
from backfill.warehouse import Warehouse

WRITTEN = tuple(o.value for o in TaskOutcome if o.wrote)  # statuses whose attempt wrote the partition's current rows


@dataclass(frozen=True)
class Written:
    """The attempt that wrote a partition's current rows."""

    started: float
    finished: float
    code_version: str | None


@dataclass(frozen=True)
class StalePartition:
    processor: str
    date: dt.date
    reasons: tuple[str, ...]
    causes: tuple[TaskKey, ...] = ()  # stale upstream partitions it read

    def to_json(self, calendar: Calendar) -> dict[str, Any]:
        return {"processor": self.processor, "date": self.date.isoformat(), "season": calendar.season_of(self.date),
                "reasons": list(self.reasons)}


@dataclass
class StaleReport:
    """Stale partitions of the selection, the wider set a recompute needs, and how to run it."""

    stale: list[StalePartition]  # of the selection, in pipeline order then date
    recompute: dict[str, list[dt.date]]  # processor -> dates; the selection's stale ones and what they need
    commands: list[str]
    unversioned: int  # written partitions of the selection whose record predates code versions
    checked: int  # written partitions of the selection looked at
    by_processor: dict[str, int] = field(default_factory=dict)

    def to_json(self, calendar: Calendar) -> dict[str, Any]:
        reasons: dict[str, int] = defaultdict(int)
        for s in self.stale:
            for r in s.reasons:
                reasons[r.split(":")[0]] += 1
        return {"stale": [s.to_json(calendar) for s in self.stale],
                "recompute": {p: [d.isoformat() for d in ds] for p, ds in self.recompute.items()},
                "commands": self.commands,
                "counts": {"stale": len(self.stale), "checked": self.checked, "unversioned": self.unversioned,
                           "by_processor": self.by_processor, "by_reason": dict(sorted(reasons.items()))}}


def find_stale(spec: PipelineSpec, calendar: Calendar, warehouse: Warehouse, selected: Sequence[str],
               ranges: Sequence[tuple[dt.date, dt.date]], seasons: Iterable[str] | None = None,
               pipeline_flag: str | None = None, season_types: Iterable[str] | None = None) -> StaleReport:
    """Stale partitions of `selected` processors on the game dates of `ranges` (and `seasons`).

    Staleness is computed over every processor of the seasons the ranges touch (all seasons when
    a window crosses seasons), so a stale upstream outside the selection still makes its readers
    stale, and a stale partition's dependents after the range are found too.
    """
    picked = {d for lo, hi in ranges for d in calendar.game_dates_between(lo, hi)
              if calendar.selected(d, seasons, season_types)}
    if not picked:
        return StaleReport([], {}, [], 0, 0, {n: 0 for n in selected})
    cross = any(d.window.cross_season for p in spec.processors.values() for d in p.depends_on)
    touched = {calendar.season_of(d) for d in picked}
    scope = [d for d in calendar.dates if cross or calendar.season_of(d) in touched]
    written = _written(spec, warehouse, scope[0], scope[-1])
    current = {n: code_version(p) for n, p in spec.processors.items()}
    stale: dict[TaskKey, StalePartition] = {}
    for name in spec.order:
        proc = spec.processors[name]
        for d in scope:
            own = written.get((name, d))
            if own is None:
                continue  # never written: a gap, not stale
            reasons: list[str] = []
            if own.code_version is not None and own.code_version != current[name]:
                reasons.append(f"code changed: written by {own.code_version}, now {current[name]}")
            causes: list[TaskKey] = []
            rewritten: list[TaskKey] = []
            for dep in proc.upstream_processors:
                for e in calendar.resolve(dep.window, d).dates:
                    key = (dep.source, e)
                    if key in stale:
                        causes.append(key)
                    elif (up := written.get(key)) is not None and up.finished > own.started:
                        rewritten.append(key)
            causes, rewritten = list(dict.fromkeys(causes)), list(dict.fromkeys(rewritten))
            if rewritten:
                reasons.append(f"upstream rewritten after it: {_first(rewritten)}")
            if causes:
                reasons.append(f"upstream stale: {_first(causes)}")
            if reasons:
                stale[(name, d)] = StalePartition(name, d, tuple(reasons), tuple(causes))
    chosen = set(selected)
    order = {n: i for i, n in enumerate(spec.order)}
    mine = sorted((s for k, s in stale.items() if k[0] in chosen and k[1] in picked),
                  key=lambda s: (order[s.processor], s.date))
    needed = _closure({(s.processor, s.date) for s in mine}, stale)
    recompute: dict[str, list[dt.date]] = {}
    for p, d in sorted(needed, key=lambda k: (order[k[0]], k[1])):
        recompute.setdefault(p, []).append(d)
    versions = [written[(n, d)] for n in selected for d in picked if (n, d) in written]
    by_processor = {n: 0 for n in selected}
    for s in mine:
        by_processor[s.processor] += 1
    return StaleReport(mine, recompute, recompute_commands(recompute, calendar, pipeline_flag),
                       sum(1 for w in versions if w.code_version is None), len(versions), by_processor)


def _first(keys: Sequence[TaskKey], n: int = 3) -> str:
    shown = ", ".join(f"{p}@{d.isoformat()}" for p, d in keys[:n])
    return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _closure(start: set[TaskKey], stale: Mapping[TaskKey, StalePartition]) -> set[TaskKey]:
    """The start set, every stale partition that read one of them (dependents, transitively), and
    every stale upstream they read (recomputing a reader before its stale upstream fixes nothing)."""
    readers: dict[TaskKey, set[TaskKey]] = defaultdict(set)
    for k, s in stale.items():
        for c in s.causes:
            readers[c].add(k)
    out = set(start)
    todo = list(start)
    while todo:
        k = todo.pop()
        for nxt in (*readers.get(k, ()), *stale[k].causes):
            if nxt not in out:
                out.add(nxt)
                todo.append(nxt)
    return out


def recompute_commands(recompute: Mapping[str, Sequence[dt.date]], calendar: Calendar,
                       pipeline_flag: str | None = None) -> list[str]:
    """`backfill enqueue ... --force --wait` commands that rewrite exactly these partitions.

    `recompute` is in pipeline order; neighbours with the same dates share a command, and each
    command's processors come after everything an earlier command writes, so running them in
    order (each waits for its run) respects every dependency.
    """
    groups: list[tuple[list[str], tuple[dt.date, ...]]] = []
    for proc, dates in recompute.items():
        ds = tuple(sorted(dates))
        if groups and groups[-1][1] == ds:
            groups[-1][0].append(proc)
        else:
            groups.append(([proc], ds))
    flags = (selection_flags(game_date_runs(ds, calendar), processors=procs, pipeline=pipeline_flag)
             for procs, ds in groups)
    return [f"backfill enqueue {f} --force --wait" for f in flags]


def game_date_runs(dates: Iterable[dt.date], calendar: Calendar) -> list[tuple[dt.date, dt.date]]:
    """Consecutive game dates (by the schedule) as (first, last) runs: an All-Star break or the
    days between the regular season and the playoffs do not split a run, a missing game date does."""
    index = {d: i for i, d in enumerate(calendar.dates)}
    runs: list[tuple[dt.date, dt.date]] = []
    last = -2
    for d in sorted(set(dates)):
        i = index.get(d)
        if i is not None and i == last + 1 and runs:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
        last = i if i is not None else -2
    return runs


def _written(spec: PipelineSpec, warehouse: Warehouse, lo: dt.date, hi: dt.date) -> dict[TaskKey, Written]:
    """The latest attempt that wrote each partition (success or partial), one partition-filtered query."""
    history = RunHistory.of(warehouse, spec)
    if not warehouse.table_exists(history.table):
        return {}
    # `finished_at` is the row's `processed_at`: their own rows' write time counts as ours does.
    rows = warehouse.query(
        f"SELECT processor_name, data_date, started_at, finished_at, attempt, code_version FROM "
        f"({history.view_sql()}) AS h WHERE data_date BETWEEN @lo AND @hi AND status IN UNNEST(@written)",
        {"lo": lo, "hi": hi, "written": list(WRITTEN)})
    best: dict[TaskKey, tuple[tuple[float, int], Written]] = {}
    for r in rows:
        key = (str(r["processor_name"]), as_date(r["data_date"]))
        finished = stamp(r["finished_at"]) or stamp(r["started_at"]) or 0.0
        rank = (finished, int(r["attempt"] or 0))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, Written(stamp(r["started_at"]) or finished, finished, r["code_version"]))
    return {k: w for k, (_, w) in best.items()}
