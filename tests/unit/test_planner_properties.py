"""Property tests: random specs over random schedules always give dependency-safe, complete plans.

Each needed upstream partition is recomputed here by brute force from the schedule rows (not
through `Calendar.resolve`), so these tests check the calendar and the planner together.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfill.calendar import Calendar
from backfill.planner import Plan, PlanRequest, build_plan
from backfill.planner.batching import BIGQUERY, DUCKDB, GENERIC
from backfill.spec import PipelineSpec, Window, load_spec

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = ("same_date", "game_dates", "team_games", "days", "season_to_date")
Rows = list[dict[str, Any]]


# -- strategies ---------------------------------------------------------------------------

@st.composite
def schedules(draw: st.DrawFn) -> Rows:
    """1-3 seasons of 2-6 teams, game dates with random gaps, a few playoff dates at the end."""
    teams = [f"T{i}" for i in range(draw(st.integers(2, 6)))]
    rows: Rows = []
    for s in range(draw(st.integers(1, 3))):
        label = f"{2020 + s}-{(21 + s) % 100:02d}"
        day = dt.date(2020 + s, 10, 20)
        n_dates = draw(st.integers(2, 14))
        playoffs = draw(st.integers(0, 2))
        for i in range(n_dates):
            day += dt.timedelta(days=draw(st.integers(1, 4)))
            order = draw(st.permutations(teams))
            games = draw(st.integers(1, len(teams) // 2))
            kind = "playoffs" if i >= n_dates - playoffs else "regular"
            for g in range(games):
                rows.append({"game_id": f"{label}-{len(rows)}", "game_date": day, "season": label,
                             "season_type": kind, "home_team": order[2 * g], "away_team": order[2 * g + 1]})
    return rows


@st.composite
def windows(draw: st.DrawFn, self_dependency: bool = False) -> dict[str, Any] | str:
    kinds = KINDS[1:] if self_dependency else KINDS
    kind = draw(st.sampled_from(kinds))
    if kind == "same_date":
        return "same_date"
    window: dict[str, Any] = {kind: draw(st.integers(0, 6)) if kind != "season_to_date" else None}
    if not self_dependency and draw(st.booleans()):
        window["include_current"] = True
    if draw(st.booleans()):
        window["cross_season"] = True
    return window


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """A random DAG of 2-7 processors (edges only to earlier ones), self-dependencies, batch sizes."""
    n = draw(st.integers(2, 7))
    split = draw(st.integers(1, n))  # processors before `split` are phase 3, the rest phase 4
    processors: dict[str, Any] = {}
    for i in range(n):
        name = f"p{i}"
        deps: list[dict[str, Any]] = [{"table": "nba_raw.schedule"}]
        for j in sorted(draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else ()):
            deps.append({"processor": f"p{j}", "window": draw(windows())})
        selfdep = draw(st.booleans()) and draw(st.booleans())
        if selfdep:
            deps.append({"processor": name, "window": draw(windows(self_dependency=True))})
        processors[name] = {
            "phase": 3 if i < split else 4, "target": f"ds.{name}", "sql": f"{name}.sql",
            "batch_size": draw(st.one_of(st.none(), st.just(1))) if selfdep
            else draw(st.one_of(st.none(), st.integers(1, 4))),
            "estimate_seconds": draw(st.integers(1, 60)), "depends_on": deps}
    return {"name": "random", "bootstrap_days": draw(st.integers(0, 10)),
            "raw_tables": {"nba_raw.schedule": {"partition": "game_date"}}, "processors": processors}


def load(raw: dict[str, Any]) -> PipelineSpec:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pipeline.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        return load_spec(path)


@st.composite
def cases(draw: st.DrawFn) -> tuple[PipelineSpec, Rows, Calendar, PlanRequest]:
    rows = draw(schedules())
    spec = load(draw(specs()))
    cal = Calendar.from_rows(rows)
    first, last = cal.dates[0], cal.dates[-1]
    span = (last - first).days

    def day() -> dt.date:
        return first + dt.timedelta(days=draw(st.integers(-5, span + 5)))

    ranges = []
    for _ in range(draw(st.integers(1, 3))):
        a, b = sorted((day(), day()))
        ranges.append((a, b))
    names = sorted(spec.processors)
    selection = draw(st.one_of(st.none(), st.sets(st.sampled_from(names), min_size=1)))
    phases = draw(st.one_of(st.none(), st.just(frozenset({3})), st.just(frozenset({4}))))
    if selection is not None:
        phases = None
    elif phases is not None and not any(p.phase in phases for p in spec.processors.values()):
        phases = None
    seasons = draw(st.one_of(st.none(), st.sets(st.sampled_from(sorted(cal.seasons)), min_size=1)))
    types = draw(st.one_of(st.none(), st.just(frozenset({"regular"})), st.just(frozenset({"playoffs"}))))
    pairs = [(n, d) for n in names for d in cal.dates]
    completed = draw(st.sets(st.sampled_from(pairs), max_size=len(pairs) // 2))
    batch_sizes = draw(st.dictionaries(st.sampled_from(names), st.integers(1, 5), max_size=2))
    request = PlanRequest(
        ranges=tuple(ranges), processors=frozenset(selection) if selection else None, phases=phases,
        seasons=frozenset(seasons) if seasons else None, season_types=types,
        order=draw(st.sampled_from(("recent-first", "chronological"))), concurrency=draw(st.integers(1, 20)),
        force=draw(st.booleans()), batch_sizes=batch_sizes, completed=frozenset(completed),
        batch=draw(st.sampled_from((None, "auto", 3))), profile=draw(st.sampled_from((GENERIC, DUCKDB, BIGQUERY))))
    return spec, rows, cal, request


# -- the brute-force model ----------------------------------------------------------------

class Schedule:
    """The schedule rows answered the slow, obvious way."""

    def __init__(self, rows: Rows) -> None:
        self.rows = [r for r in rows if r["season_type"] in ("regular", "play_in", "playoffs")]
        self.dates = sorted({r["game_date"] for r in self.rows})

    def season(self, day: dt.date) -> str | None:
        for r in self.rows:
            if r["game_date"] == day:
                return str(r["season"])
        for label in {r["season"] for r in self.rows}:
            ds = [r["game_date"] for r in self.rows if r["season"] == label]
            if min(ds) <= day <= max(ds):
                return str(label)
        return None

    def needed(self, window: Window, day: dt.date) -> set[dt.date]:
        if window.kind == "same_date":
            return {day}
        season = self.season(day)
        rows = self.rows if window.cross_season or season is None else [r for r in self.rows
                                                                        if r["season"] == season]
        pool = sorted({r["game_date"] for r in rows if r["game_date"] < day})
        out: set[dt.date] = set()
        if window.kind == "game_dates":
            out = set(pool[max(0, len(pool) - window.size):])
        elif window.kind == "days":
            out = {d for d in pool if d >= day - dt.timedelta(days=window.size)}
        elif window.kind == "season_to_date":
            # The season to date never reaches into another season, cross_season or not.
            out = {r["game_date"] for r in self.rows if r["season"] == season and r["game_date"] < day}
        elif window.kind == "team_games":
            for team in {r["home_team"] for r in rows} | {r["away_team"] for r in rows}:
                mine = sorted({r["game_date"] for r in rows if team in (r["home_team"], r["away_team"])
                               and r["game_date"] < day})
                out.update(mine[max(0, len(mine) - window.size):])
        if window.include_current and day in self.dates:
            out.add(day)
        return out

    def requested(self, request: PlanRequest) -> set[dt.date]:
        out = set()
        for r in self.rows:
            d = r["game_date"]
            if not any(a <= d <= b for a, b in request.ranges):
                continue
            if request.seasons and r["season"] not in request.seasons:
                continue
            if request.season_types and r["season_type"] not in request.season_types:
                continue
            out.add(d)
        return out


def selected(spec: PipelineSpec, request: PlanRequest) -> set[str]:
    return {n for n, p in spec.processors.items()
            if (request.processors is None or n in request.processors)
            and (request.phases is None or p.phase in request.phases)}


def owners(plan: Plan) -> dict[tuple[str, dt.date], str]:
    out: dict[tuple[str, dt.date], str] = {}
    for t in plan.tasks():
        for d in t.dates:
            out[(t.processor, d)] = t.id
    return out


# -- properties ---------------------------------------------------------------------------

@SETTINGS
@given(cases())
def test_every_plan_respects_every_dependency(case: tuple[PipelineSpec, Rows, Calendar, PlanRequest]) -> None:
    spec, rows, cal, request = case
    plan = build_plan(spec, cal, request)
    schedule = Schedule(rows)
    owner = owners(plan)
    tasks = plan.task_map()
    for t in tasks.values():
        for dep_id in t.depends_on:
            assert tasks[dep_id].wave < t.wave
        for dep in spec.processors[t.processor].upstream_processors:
            for day in t.dates:
                for needed in schedule.needed(dep.window, day):
                    src = owner.get((dep.source, needed))
                    if src is None or src == t.id:
                        assert src is None or dep.source == t.processor
                        continue
                    assert src in t.depends_on, f"{t.id} reads {dep.source}@{needed} without waiting for {src}"
                    assert tasks[src].wave < t.wave


@SETTINGS
@given(cases())
def test_every_requested_partition_is_planned_exactly_once(case: tuple[PipelineSpec, Rows, Calendar,
                                                                       PlanRequest]) -> None:
    spec, rows, cal, request = case
    plan = build_plan(spec, cal, request)
    schedule = Schedule(rows)
    wanted = {(n, d) for n in selected(spec, request) for d in schedule.requested(request)}
    if not request.force:
        wanted -= request.completed
    counts = Counter((t.processor, d) for t in plan.tasks() for d in t.dates)
    assert set(counts) == wanted
    assert set(counts.values()) <= {1}
    if not request.force:
        assert not set(counts) & request.completed
    assert plan.estimates.tasks == len(plan)
    assert plan.estimates.sequential_seconds >= plan.estimates.wall_seconds - 1e-6
    assert plan.estimates.wall_seconds >= plan.estimates.critical_path_seconds - 1e-6


@SETTINGS
@given(cases())
def test_tasks_are_well_formed(case: tuple[PipelineSpec, Rows, Calendar, PlanRequest]) -> None:
    spec, _, cal, request = case
    plan = build_plan(spec, cal, request)
    ids = [t.id for t in plan.tasks()]
    assert len(ids) == len(set(ids))
    for t in plan.tasks():
        proc = spec.processors[t.processor]
        if proc.self_dependent:
            size = 1
        elif t.processor in request.batch_sizes:
            size = request.batch_sizes[t.processor]
        elif isinstance(request.batch, int):
            size = request.batch
        elif request.batch == "auto":
            size = proc.batch_size or 366
        else:
            size = proc.batch_size or 1
        assert 1 <= len(t.dates) <= size
        assert list(t.dates) == sorted(set(t.dates))
        assert {cal.season_of(d) for d in t.dates} == {t.season}
        if t.bootstrap:
            assert (t.dates[0] - cal.seasons[t.season].start).days < spec.bootstrap_days
    recent = request.order == "recent-first"
    for wave in plan.waves:
        years = [int(t.season[:4]) for t in wave]
        assert years == sorted(years, reverse=recent)


@SETTINGS
@given(cases())
def test_unsatisfied_upstream_is_exactly_what_is_neither_planned_nor_complete(
        case: tuple[PipelineSpec, Rows, Calendar, PlanRequest]) -> None:
    spec, rows, cal, request = case
    plan = build_plan(spec, cal, request)
    schedule = Schedule(rows)
    owner = owners(plan)
    missing = 0
    for t in plan.tasks():
        for dep in spec.processors[t.processor].upstream_processors:
            for day in t.dates:
                for needed in schedule.needed(dep.window, day):
                    if (dep.source, needed) not in owner and (dep.source, needed) not in request.completed:
                        missing += 1
    assert plan.counts["unsatisfied_upstream"] == missing
