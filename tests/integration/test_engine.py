"""The engine end to end: real redis-server, real Celery worker subprocesses, a real DuckDB league."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest

from backfill.cli.selection import plan_from_warehouse
from backfill.executor import execute_task
from backfill.planner import Plan, PlanRequest, Task
from backfill.spec import load_spec
from backfill.state import RunRecord, RunStatus, TaskStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.integration.engine_harness import (
    OPENING,
    REPO,
    cli,
    enqueue,
    history,
    league_copy,
    table_checksums,
    wait_run,
)

pytestmark = pytest.mark.integration


def succeeded(env: dict, run_id: str, timeout: float) -> tuple[RunRecord, dict[str, TaskStatus]]:
    """The run, once finished: succeeded, every task succeeded; and its task states."""
    run = wait_run(env["store"], run_id, timeout=timeout)
    assert run.status is RunStatus.succeeded, run
    states = env["store"].states(run_id)
    assert set(states.values()) == {TaskStatus.success}
    return run, states


def run_sequentially(seq: Path, request: PlanRequest, *, date_by_date: bool = False) -> tuple[Plan, list[str]]:
    """Plan `request` on the league copy `seq` and execute it here, task by task, in plan order or, with
    `date_by_date`, strictly sequentially: date by date, processor by processor (the users' manual plan).
    Every task must end a success or partial. Returns the plan and the tables of the requested phases."""
    spec = load_spec(REPO / "pipelines" / "nba")
    wh = DuckDBWarehouse(seq)
    plan, _ = plan_from_warehouse(spec, wh, request)
    tasks: Iterable[Task] = plan.tasks()
    if date_by_date:
        tasks = sorted(tasks, key=lambda t: (t.dates[0], spec.order.index(t.processor)))
    for task in tasks:
        assert execute_task(task, wh, spec).status in ("success", "partial")
    wh.close()
    return plan, [spec.processors[n].target for n in spec.order if spec.processors[n].phase in (request.phases or ())]


def test_opening_weeks_run_matches_sequential_execution(env: dict, tmp_path: Path, league_template: Path) -> None:
    """Default batching (auto): few multi-date tasks, dispatched as their upstream tasks settle."""
    env["worker"]()
    run_id = enqueue(env, selection=OPENING)
    run, states = succeeded(env, run_id, timeout=90)

    seq = league_copy(league_template, tmp_path / "seq.duckdb")
    request = PlanRequest(ranges=((dt.date(2023, 10, 1), dt.date(2023, 10, 31)),), phases=frozenset({3, 4}),
                          batch="auto")
    plan, tables = run_sequentially(seq, request)
    assert {t.id for t in plan.tasks()} == set(states)
    assert table_checksums(env["wh"], tables) == table_checksums(seq, tables)
    rows = history(env["wh"], run_id)
    assert Counter(r["status"] for r in rows) == Counter({"success": len(rows)})
    assert len({r["wave"] for r in rows}) == run.waves


@pytest.mark.slow
def test_default_run_matches_sequential_execution(env: dict, tmp_path: Path, league_template: Path) -> None:
    """The 2023-24 sample season's first ten weeks through real workers, with the default (auto)
    batching, equals the users' manual plan: date by date (about 650 one-date tasks in-process).

    The default puts each processor's season in one set-based task on DuckDB; the many-small-task
    path of the engine is covered by the opening-weeks test above and the recovery tests.
    """
    env["worker"](concurrency=4)
    season = ("--seasons", "2023-24", "--phases", "3,4")
    result = cli(env, "enqueue", "--start", "2023-10-01", "--end", "2023-12-31", *season)
    assert result.exit_code == 0, result.output
    run_id = result.stdout.strip().splitlines()[-1]
    succeeded(env, run_id, timeout=600)

    seq = league_copy(league_template, tmp_path / "seq.duckdb")
    request = PlanRequest(ranges=((dt.date(2023, 10, 1), dt.date(2023, 12, 31)),), phases=frozenset({3, 4}),
                          seasons=frozenset({"2023-24"}), batch=1)
    plan, tables = run_sequentially(seq, request, date_by_date=True)
    tasks = env["store"].tasks(run_id)
    assert {(t.processor, d) for t in plan.tasks() for d in t.dates} == {
        (t.processor, d) for t in tasks.values() for d in t.dates}  # the same partitions, in 1 vs N tasks
    assert len(plan) > 500 and len(tasks) < 30
    assert table_checksums(env["wh"], tables) == table_checksums(seq, tables)
    rows = history(env["wh"], run_id)
    assert len(rows) == len(plan)  # one run-history row per (processor, date)
    assert {r["status"] for r in rows} == {"success"}
