"""From a request to tasks and their dependency edges (no waves yet).

A task's dependencies are the planned tasks that write a partition inside one of its
windows. Partitions outside the plan are fine when the run history says they succeeded;
otherwise they are counted as *unsatisfied* and reported, never silently assumed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from backfill.calendar import SEASON_TYPES, Calendar, Resolution
from backfill.errors import PlanError
from backfill.planner.batching import BatchChoice, chunk_sizes, decide, parse_batch
from backfill.planner.model import ORDERS, PlanRequest, TaskKey, task_id
from backfill.spec import PipelineSpec, Window


@dataclass
class DraftTask:
    id: str
    processor: str
    phase: int
    season: str
    dates: tuple[dt.date, ...]
    deps: set[str] = field(default_factory=set)
    cut: bool = False
    bootstrap: bool = False


@dataclass
class Draft:
    """Tasks in dependency order (every task after everything it depends on) and what was noticed."""

    tasks: list[DraftTask]
    requested_dates: tuple[dt.date, ...]
    skipped_completed: int = 0
    skipped_adopted: int = 0  # of those, the ones the processors' own code wrote (history_names)
    no_game_days: int = 0
    outside_season_days: int = 0
    unsatisfied: Counter[str] = field(default_factory=Counter)
    unsatisfied_example: dict[str, str] = field(default_factory=dict)
    cut_by_processor: Counter[str] = field(default_factory=Counter)
    batches: dict[str, BatchChoice] = field(default_factory=dict)


def requested_dates(calendar: Calendar, request: PlanRequest) -> tuple[tuple[dt.date, ...], int, int]:
    """Game dates selected by ranges, seasons and season types; plus days with no games / no season."""
    picked: set[dt.date] = set()
    no_games = outside = 0
    seen_days: set[dt.date] = set()
    for start, end in request.ranges:
        day = start
        while day <= end:
            if day not in seen_days:
                seen_days.add(day)
                if not calendar.is_game_date(day):
                    containing = calendar.season_containing(day)
                    if containing is None:
                        outside += 1
                    elif not request.seasons or containing in request.seasons:
                        no_games += 1
            day += dt.timedelta(days=1)
        for d in calendar.game_dates_between(start, end):
            season = calendar.season_of(d)
            if request.seasons and season not in request.seasons:
                continue
            if request.season_types and not (calendar.season_types_on(d) & request.season_types):
                continue
            picked.add(d)
    return tuple(sorted(picked)), no_games, outside


def validate_request(calendar: Calendar, request: PlanRequest) -> None:
    if not request.ranges:
        raise PlanError("no date range given: pass --start and --end, or --range START:END")
    for start, end in request.ranges:
        if end < start:
            raise PlanError(f"range {start}:{end} ends before it starts: swap --start and --end")
    if request.order not in ORDERS:
        raise PlanError(f"unknown order {request.order!r}: use one of {', '.join(ORDERS)}")
    if request.seasons:
        unknown = sorted(request.seasons - set(calendar.seasons))
        if unknown:
            raise PlanError(f"unknown season(s) {', '.join(unknown)}: the schedule has "
                            f"{', '.join(calendar.seasons) or 'no seasons (load data first)'}")
    if request.season_types:
        unknown = sorted(request.season_types - set(SEASON_TYPES))
        if unknown:
            raise PlanError(f"unknown season type(s) {', '.join(unknown)}: use {', '.join(SEASON_TYPES)}")
    if request.concurrency < 1:
        raise PlanError(f"--concurrency must be at least 1, got {request.concurrency}")
    for name, size in request.batch_sizes.items():
        if size < 1:
            raise PlanError(f"batch size for {name} must be at least 1, got {size}")
    try:
        parse_batch(request.batch)
    except ValueError as exc:
        raise PlanError(f"--{exc}") from None


def _with_upstream(spec: PipelineSpec, wanted: dict[str, list[dt.date]], completed: frozenset[TaskKey],
                   resolve: Callable[[Window, dt.date], Resolution]) -> dict[str, list[dt.date]]:
    """Add every upstream partition the selected windows read that is not done, transitively.

    A 7-day Phase 4 test run mid-season needs Phase 3 partitions weeks back (season to date for
    some windows): this plans them too, so the test run is complete instead of failing its
    defensive checks. Walks processors downstream-first, so an added upstream's own windows
    are followed in turn.
    """
    need: dict[str, set[dt.date]] = {n: set(ds) for n, ds in wanted.items()}
    for name in reversed(spec.order):
        days = need.get(name)
        if not days:
            continue
        for dep in spec.processors[name].upstream_processors:
            for d in days:
                for e in resolve(dep.window, d).dates:
                    if (dep.source, e) not in completed and not (dep.source == name and e in days):
                        need.setdefault(dep.source, set()).add(e)
    return {n: sorted(ds) for n, ds in need.items()}


def _todo_by_season(calendar: Calendar, request: PlanRequest, selected: tuple[str, ...],
                    wanted: dict[str, list[dt.date]], draft: Draft) -> dict[str, dict[str, list[dt.date]]]:
    """Each selected processor's dates still to do (all of them when forced), by season; the dates
    already completed are counted on the draft as skipped."""
    todo_by: dict[str, dict[str, list[dt.date]]] = {}
    for name in selected:
        todo = [d for d in wanted[name] if request.force or (name, d) not in request.completed]
        draft.skipped_completed += len(wanted[name]) - len(todo)
        if not request.force:
            draft.skipped_adopted += sum(1 for d in wanted[name] if (name, d) in request.adopted)
        by_season: dict[str, list[dt.date]] = defaultdict(list)
        for d in todo:
            by_season[calendar.season_of(d) or "?"].append(d)
        todo_by[name] = dict(by_season)
    return todo_by


def build_draft(spec: PipelineSpec, calendar: Calendar, request: PlanRequest) -> Draft:
    validate_request(calendar, request)
    selected = spec.select(set(request.phases) if request.phases else None,
                           set(request.processors) if request.processors else None)
    dates, no_games, outside = requested_dates(calendar, request)
    draft = Draft(tasks=[], requested_dates=dates, no_game_days=no_games, outside_season_days=outside)
    owner: dict[TaskKey, str] = {}
    cache: dict[tuple[Window, dt.date], Resolution] = {}

    def resolve(window: Window, day: dt.date) -> Resolution:
        key = (window, day)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = calendar.resolve(window, day)
        return hit

    wanted: dict[str, list[dt.date]] = {name: list(dates) for name in selected}
    if request.with_upstream:
        wanted = _with_upstream(spec, wanted, request.completed, resolve)
        selected = tuple(n for n in spec.order if wanted.get(n))
    todo_by = _todo_by_season(calendar, request, selected, wanted, draft)
    draft.batches = decide(spec, selected, {n: {s: len(v) for s, v in by.items()} for n, by in todo_by.items()},
                           batch=request.batch, overrides=request.batch_sizes, profile=request.profile,
                           costs=request.costs, durations=request.durations, concurrency=request.concurrency)
    for name in selected:
        proc = spec.processors[name]
        size = draft.batches[name].size
        # The model's sizes are split evenly (no short tail batch); asked-for sizes are exact.
        even = request.batch == "auto" and not proc.self_dependent and name not in request.batch_sizes
        for season in sorted(todo_by[name]):
            sdates = todo_by[name][season]
            lengths = chunk_sizes(len(sdates), size) if even else [
                min(size, len(sdates) - i) for i in range(0, len(sdates), size)]
            first = 0
            for length in lengths:
                chunk = tuple(sdates[first:first + length])
                first += length
                tid = task_id(name, chunk[0])
                task = DraftTask(tid, name, proc.phase, season, chunk)
                season_start = calendar.seasons[season].start if season in calendar.seasons else chunk[0]
                for dep in proc.depends_on:
                    for d in chunk:
                        res = resolve(dep.window, d)
                        if res.cut:
                            task.cut = True
                            if (d - season_start).days < spec.bootstrap_days:
                                task.bootstrap = True
                        if not dep.is_processor:
                            continue
                        for e in res.dates:
                            src = owner.get((dep.source, e))
                            if src is not None:
                                if src != tid:
                                    task.deps.add(src)
                            elif dep.source == name and e in chunk:
                                continue
                            elif (dep.source, e) not in request.completed:
                                draft.unsatisfied[name] += 1
                                draft.unsatisfied_example.setdefault(name, task_id(dep.source, e))
                if task.cut:
                    draft.cut_by_processor[name] += 1
                for d in chunk:
                    owner[(name, d)] = tid
                draft.tasks.append(task)
    return draft
