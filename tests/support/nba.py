"""Real-season NBA test setup: a plan run in-process as a finished backfill leaves it, and what tests read
straight from the raw schedule, so expectations never come from the planner."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import duckdb

from backfill.calendar import Calendar
from backfill.executor import execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.runhistory import RunHistory
from backfill.spec import PipelineSpec
from backfill.warehouse import Warehouse
from tests.support.history import rows_of


def schedule(wh: Path, season: str = "2022-23") -> tuple[list[dt.date], dict[str, list[dt.date]]]:
    """The season's game dates (regular, play-in, playoffs) and each team's game dates, from `nba_raw.schedule`."""
    con = duckdb.connect(str(wh), read_only=True)
    try:
        rows = con.execute("SELECT game_date, home_team, away_team FROM nba_raw.schedule WHERE season = ? "
                           "AND season_type IN ('regular', 'play_in', 'playoffs')", [season]).fetchall()
    finally:
        con.close()
    teams: dict[str, set[dt.date]] = defaultdict(set)
    for day, home, away in rows:
        teams[home].add(day)
        teams[away].add(day)
    return sorted({r[0] for r in rows}), {t: sorted(ds) for t, ds in teams.items()}


def run_in_process(w: Warehouse, spec: PipelineSpec, cal: Calendar, request: PlanRequest, run_id: str) -> None:
    """Execute every task of the request's plan here, in wave order, each a success, and record them in the
    run history under `run_id`, as an earlier run would have."""
    history = RunHistory(w, spec.run_history_table)
    history.ensure()
    for task in build_plan(spec, cal, request).tasks():
        result = execute_task(task, w, spec, run_id=run_id, calendar=cal)
        assert result.status == "success", (task.id, result.error_message, result.warnings[:3])
        history.write(rows_of(result, task, run_id))
