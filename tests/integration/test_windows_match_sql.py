"""Each processor's SQL reads no upstream partition outside the windows its spec declares.

The planner orders tasks by the declared windows; if the SQL read further back, a task could run
before a partition it reads was written, and plan order would change the results. So: in a copy
of the warehouse, delete every upstream partition outside the task's declared windows, rerun the
task, and require the same output.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from backfill.calendar import Calendar
from backfill.executor import execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.planner.model import Task, task_id
from backfill.spec import PipelineSpec, load_spec
from backfill.warehouse.duckdb import DuckDBWarehouse

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "pipelines" / "nba")
START, LATE, EARLY = dt.date(2023, 10, 24), dt.date(2023, 12, 8), dt.date(2023, 11, 3)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def season_start(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six weeks of the sample league's Phase 3, then Phase 4 on the two dates under test."""
    from pipelines.nba.sample import load_sample

    path = tmp_path_factory.mktemp("windows") / "base.duckdb"
    with DuckDBWarehouse(path) as w:
        load_sample(w, seasons=("2023-24",), seed=7)
        cal = Calendar.from_warehouse(w, "nba_raw.schedule")
        phase3 = build_plan(SPEC, cal, PlanRequest(ranges=((START, LATE),), phases=frozenset({3})))
        phase4 = build_plan(SPEC, cal, PlanRequest(ranges=((EARLY, EARLY), (LATE, LATE)), phases=frozenset({4})))
        for t in [*phase3.tasks(), *phase4.tasks()]:
            assert execute_task(t, w, SPEC).ok, t.id
    return path


def single_task(path: Path, processor: str, day: dt.date) -> tuple[Task, Calendar]:
    with DuckDBWarehouse(path) as w:
        cal = Calendar.from_warehouse(w, "nba_raw.schedule")
    plan = build_plan(SPEC, cal, PlanRequest(ranges=((day, day),), processors=frozenset({processor})))
    return plan.task_map()[task_id(processor, day)], cal


def allowed_partitions(spec: PipelineSpec, processor: str, day: dt.date,
                       cal: Calendar) -> dict[tuple[str, str], set[dt.date]]:
    """(table, partition column) -> the dates the declared windows let a task on `day` read."""
    allowed: dict[tuple[str, str], set[dt.date]] = defaultdict(set)
    for dep in spec.processors[processor].depends_on:
        if dep.is_processor:
            up = spec.processors[dep.source]
            key = (up.target, up.partition)
        else:
            raw = spec.raw_tables[dep.source]
            if raw.partition is None:
                continue  # the registry and aliases are read whole, by design
            key = (raw.name, raw.partition)
        allowed[key].update(cal.resolve(dep.window, day).dates)
    return allowed


def output(path: Path, table: str, day: dt.date) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sorted(con.execute(f"SELECT * FROM {table} WHERE game_date = ?", [day]).fetchall(), key=repr)
    finally:
        con.close()


def rerun_without(path: Path, task: Task, delete: dict[tuple[str, str], set[dt.date]], keep: bool,
                  cal: Calendar) -> Path:
    """Copy, delete partitions (outside the given dates if `keep`, else exactly those), rerun the task.

    Fails if the deletion removed no upstream row at all, which would make the comparison vacuous.
    The task gets the calendar of the whole schedule, as the engine gives it: the copy's schedule
    lost its partitions outside the windows too, and `@window_start` comes from the calendar.
    """
    copy = path.parent / f"{task.processor}-{task.dates[0]}-{'keep' if keep else 'drop'}.duckdb"
    shutil.copy(path, copy)
    with DuckDBWarehouse(copy) as w:
        rows_before = sum(w.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t, _ in delete)
        for (table, column), dates in delete.items():
            if keep and not dates:
                w.execute(f"DELETE FROM {table} WHERE TRUE")
            else:
                op = "NOT IN" if keep else "IN"
                w.execute(f"DELETE FROM {table} WHERE {column} {op} UNNEST(@dates)", {"dates": sorted(dates)})
        removed = rows_before - sum(w.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t, _ in delete)
        assert removed > 0, f"{task.id}: no upstream row lies outside its windows"
        result = execute_task(task, w, SPEC, calendar=cal)
    assert result.ok, (task.id, result.error_message)
    return copy


@pytest.mark.parametrize("day", [EARLY, LATE], ids=["early-season", "mid-season"])
@pytest.mark.parametrize("processor", list(SPEC.order))
def test_output_is_unchanged_without_partitions_outside_the_window(season_start: Path, processor: str,
                                                                   day: dt.date) -> None:
    task, cal = single_task(season_start, processor, day)
    allowed = allowed_partitions(SPEC, processor, day, cal)
    target = SPEC.processors[processor].target
    before = output(season_start, target, day)
    assert before, f"{target} has no rows on {day}: nothing to compare"
    assert output(rerun_without(season_start, task, allowed, keep=True, cal=cal), target, day) == before


def test_the_check_notices_a_missing_partition_inside_a_window(season_start: Path) -> None:
    """Guard against a vacuous test: dropping one in-window upstream date does change the output."""
    task, cal = single_task(season_start, "upcoming_player_game_context", LATE)
    last = max(cal.resolve(SPEC.processors[task.processor].depends_on[0].window, LATE).dates)
    copy = rerun_without(season_start, task, {("nba_analytics.player_game_summary", "game_date"): {last}},
                         keep=False, cal=cal)
    target = "nba_analytics.upcoming_player_game_context"
    assert output(copy, target, LATE) != output(season_start, target, LATE)
