"""The selection flags shared by `plan`, `enqueue` and `gaps`, and turning them into a PlanRequest."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import click

from backfill.calendar import Calendar
from backfill.errors import BadInput, PlanError
from backfill.planner import Plan, PlanRequest, build_plan
from backfill.planner.batching import BIGQUERY, DUCKDB, GENERIC, WarehouseProfile, calibrate, parse_batch
from backfill.planner.flags import selection_flags
from backfill.planner.model import ORDERS, TaskKey
from backfill.runhistory import RunHistory
from backfill.spec import PipelineSpec


def parse_date(value: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PlanError(f"{flag} {value!r} is not a date: use YYYY-MM-DD") from None


def parse_ranges(start: str | None, end: str | None, ranges: tuple[str, ...]) -> tuple[tuple[dt.date, dt.date], ...]:
    out: list[tuple[dt.date, dt.date]] = []
    if start or end:
        if not (start and end):
            raise PlanError("--start and --end go together: pass both, or use --range START:END")
        out.append((parse_date(start, "--start"), parse_date(end, "--end")))
    for r in ranges:
        first, sep, last = r.partition(":")
        if not sep:
            raise PlanError(f"--range {r!r} must look like 2021-11-01:2021-11-07")
        out.append((parse_date(first, "--range start"), parse_date(last, "--range end")))
    if not out:
        raise PlanError("no dates given: pass --start D --end D, or one or more --range START:END")
    for lo, hi in out:
        if hi < lo:
            raise PlanError(f"range {lo}:{hi} ends before it starts: swap the dates")
    return tuple(out)


def _csv(value: str | None, flag: str = "list") -> list[str]:
    """A comma-separated flag value. Not given: no filter. Given, it must name something in every
    item: `--phases ""` or `--phases 3,` meaning "every phase" by accident is refused."""
    if value is None:
        return []
    items = [v.strip() for v in value.split(",")]
    if not value.strip() or any(not v for v in items):
        raise BadInput(f"{flag} {value!r} has an empty item: write names or numbers separated by commas, "
                       f"e.g. {_EXAMPLES.get(flag, 'a,b')}", hint=f"leave {flag} out to select everything")
    return items


_EXAMPLES = {"--phases": "3,4", "--processors": "player_game_summary,team_offense_game_summary",
             "--seasons": "2022-23,2023-24", "--season-types": "regular,playoffs"}


def parse_phases(value: str | None) -> frozenset[int] | None:
    items = _csv(value, "--phases")
    if not items:
        return None
    try:
        return frozenset(int(v) for v in items)
    except ValueError:
        raise PlanError(f"--phases {value!r} must be numbers like 3,4") from None


verify_existing_help = ("Hold partitions adopted from the processors' own history rows (history_names) to "
                        "their `expect:` checks before trusting them; those that fail are gaps.")
verify_option = click.option("--verify-existing", is_flag=True, help=verify_existing_help)


option_flag = click.option(
    "--option", "options", multiple=True, metavar="KEY=VALUE",
    help="Sent to every processor of the run, over the spec's backfill_options (e.g. backfill_mode=false); "
         "repeatable.")


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`--option key=value` pairs; values read as bool/int/float when they look like one."""
    from backfill.processors.base import parse_option

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise BadInput(f"--option {pair!r} is not KEY=VALUE with KEY a name",
                           hint="e.g. --option backfill_mode=true")
        out[key] = parse_option(value)
    return out


def sent_options(spec: PipelineSpec, names: Any, run_options: dict[str, Any]) -> dict[str, Any]:
    """What `plan` shows: the options every processor of the run is sent, and each processor whose
    own `options:` make its call differ."""
    block = {**spec.backfill_options, **run_options}
    differ = {n: spec.options_for(n, run_options) for n in names if spec.options_for(n, run_options) != block}
    return {"every_processor": block, "by_processor": differ}


def selection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command with DESIGN.md's selection flags."""
    opts = [
        click.option("--pipeline", default=None, help="Pipeline directory (default pipelines/nba)."),
        click.option("--start", default=None, help="First date, YYYY-MM-DD."),
        click.option("--end", default=None, help="Last date, YYYY-MM-DD (inclusive)."),
        click.option("--range", "ranges", multiple=True, help="START:END, repeatable (one week of each season)."),
        click.option("--phases", default=None, help="Comma-separated phases, e.g. 3,4."),
        click.option("--processors", default=None, help="Comma-separated processor names."),
        click.option("--seasons", default=None, help="Comma-separated seasons, e.g. 2023-24,2024-25."),
        click.option("--season-types", default=None, help="Comma-separated: regular,play_in,playoffs."),
        click.option("--order", type=click.Choice(ORDERS), default="recent-first", show_default=True,
                     help="Which season finishes first."),
        click.option("--concurrency", type=click.IntRange(1, 1024), default=None,
                     help="Parallel tasks for estimates and execution (default from settings)."),
        click.option("--force", is_flag=True, help="Redo tasks that already succeeded."),
        click.option("--batch", default="auto", show_default=True, metavar="auto|N",
                     help="Dates per task: `auto` (cost model, see `plan`) or N for every processor."),
        click.option("--with-upstream", is_flag=True,
                     help="Also plan the upstream partitions the windows read that are not done yet "
                          "(a test week mid-season needs Phase 3 back to the season start)."),
        verify_option,
    ]
    return functools.reduce(lambda f, o: o(f), reversed(opts), fn)


def reading_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The selection flags of the commands that read what was written (`gaps`, `validate`)."""
    opts = [
        click.option("--pipeline", default=None, help="Pipeline directory (default pipelines/nba)."),
        click.option("--start", default=None, help="First date, YYYY-MM-DD."),
        click.option("--end", default=None, help="Last date, YYYY-MM-DD (inclusive)."),
        click.option("--range", "ranges", multiple=True, help="START:END, repeatable."),
        click.option("--phases", default=None, help="Comma-separated phases, e.g. 3,4."),
        click.option("--processors", default=None, help="Comma-separated processor names."),
        click.option("--seasons", default=None, help="Comma-separated seasons, e.g. 2023-24,2024-25."),
        click.option("--season-types", default=None, help="Comma-separated: regular,play_in,playoffs."),
    ]
    return functools.reduce(lambda f, o: o(f), reversed(opts), fn)


def parse_season_types(value: str | None) -> frozenset[str] | None:
    """`--season-types` as a set (None: every type), unknown names refused."""
    from backfill.calendar import SEASON_TYPES

    chosen = frozenset(_csv(value, "--season-types")) or None
    unknown = sorted((chosen or frozenset()) - set(SEASON_TYPES))
    if unknown:
        raise PlanError(f"--season-types {', '.join(unknown)}: unknown; use {','.join(SEASON_TYPES)}")
    return chosen


def request_flags(request: dict[str, Any]) -> str:
    """A stored request's selection as CLI flags (ranges, phases or processors, seasons, season
    types), for the commands a hint prints: pasted, they select what the run selected."""
    return selection_flags(request.get("ranges") or [], processors=request.get("processors") or (),
                           phases=request.get("phases") or (), seasons=request.get("seasons") or (),
                           season_types=request.get("season_types") or ())


def build_request(*, start: str | None, end: str | None, ranges: tuple[str, ...], phases: str | None,
                  processors: str | None, seasons: str | None, season_types: str | None, order: str,
                  concurrency: int | None, force: bool, default_concurrency: int, batch: str = "auto",
                  with_upstream: bool = False, verify_existing: bool = False) -> PlanRequest:
    try:
        chosen = parse_batch(batch)
    except ValueError as exc:
        raise PlanError(f"--{exc}") from None
    return PlanRequest(
        ranges=parse_ranges(start, end, ranges), phases=parse_phases(phases),
        processors=frozenset(_csv(processors, "--processors")) or None,
        seasons=frozenset(_csv(seasons, "--seasons")) or None,
        season_types=frozenset(_csv(season_types, "--season-types")) or None, order=order,
        concurrency=concurrency or default_concurrency, force=force, batch=chosen, with_upstream=with_upstream,
        verify_existing=verify_existing)


def plan_from_warehouse(spec: PipelineSpec, warehouse: Any, request: PlanRequest,
                        calendar: Calendar | None = None) -> tuple[Plan, Calendar]:
    """Read the calendar (unless given, already read) and the run history, then plan (the only
    I/O around the pure planner)."""
    calendar = calendar if calendar is not None else Calendar.from_warehouse(warehouse, spec.schedule_table)
    if not calendar.seasons:
        raise BadInput(f"the schedule table {spec.schedule_table} is empty",
                       hint="load raw data first: `backfill data sample` or `backfill data import-nba DIR`")
    history = RunHistory.of(warehouse, spec)
    lo = min(a for a, _ in request.ranges)
    hi = max(b for _, b in request.ranges)
    completed = history.completed(lo - dt.timedelta(days=400), hi)
    adopted = history.adopted(lo - dt.timedelta(days=400), hi) if history.aliases else frozenset()
    if request.verify_existing and adopted:
        failing = failing_adopted(warehouse, spec, calendar, adopted, request.ranges)
        completed, adopted = completed - failing.keys(), adopted - failing.keys()
    profile = warehouse_profile(warehouse)
    estimates = {n: p.estimate_seconds for n, p in spec.processors.items()}
    costs = calibrate(history.task_samples(), profile, estimates)
    request = replace(request, completed=completed, adopted=adopted, profile=profile, costs=costs)
    return build_plan(spec, calendar, request), calendar


def failing_adopted(warehouse: Any, spec: PipelineSpec, calendar: Calendar, adopted: frozenset[TaskKey],
                    ranges: tuple[tuple[dt.date, dt.date], ...]) -> dict[TaskKey, str]:
    """Adopted partitions inside `ranges` that fail their processor's `expect:` checks, and why."""
    from backfill.executor import verify_written

    wanted: dict[str, list[dt.date]] = {}
    for name, day in sorted(adopted):
        if name in spec.processors and any(lo <= day <= hi for lo, hi in ranges):
            wanted.setdefault(name, []).append(day)
    return verify_written(warehouse, spec, calendar, wanted)


def warehouse_profile(warehouse: Any) -> WarehouseProfile:
    """The batching model's profile for this warehouse (its limits and default costs)."""
    kind = type(warehouse).__name__.lower()
    if kind.startswith("duckdb"):
        return DUCKDB
    if kind.startswith("bigquery"):
        return BIGQUERY
    return GENERIC
