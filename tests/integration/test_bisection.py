"""A failed batch is bisected: one bad date inside a 100-date batch fails alone, with its true dependents."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from backfill.calendar import Calendar
from backfill.checks import UpstreamCheck
from backfill.errors import WarehouseError
from backfill.executor import execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.planner.model import Task
from backfill.spec import load_spec
from backfill.warehouse.duckdb import DuckDBWarehouse
from backfill.warehouse.schema import TableSchema

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "pipelines" / "nba")


class OneBadDate(DuckDBWarehouse):
    """Real DuckDB; a write of team_defense_game_summary fails whenever the bad date is among its dates."""

    bad: dt.date
    writes = 0

    def replace_partitions(self, table: TableSchema, dates: Sequence[dt.date], select_sql: str,
                           params: Mapping[str, Any] | None = None, *,
                           labels: Mapping[str, str] | None = None) -> int:
        if table.name == "nba_analytics.team_defense_game_summary":
            self.writes += 1
            if self.bad in dates:
                raise WarehouseError(f"division by zero on {self.bad}", category="processor_error")
        return super().replace_partitions(table, dates, select_sql, params, labels=labels)


def test_one_bad_date_in_a_100_date_batch_fails_alone_with_its_dependents(tmp_path: Path,
                                                                         league_template: Path) -> None:
    path = tmp_path / "wh.duckdb"
    path.write_bytes(league_template.read_bytes())
    wh = OneBadDate(path)
    cal = Calendar.from_warehouse(wh, SPEC.schedule_table)
    days = cal.seasons["2023-24"].dates[:100]
    wh.bad = days[60]
    t = Task("team_defense_game_summary@batch", "team_defense_game_summary", 3, "2023-24", tuple(days), (), False,
             0, 1.0)
    result = execute_task(t, wh, SPEC, calendar=cal)
    assert result.status == "failed" and result.error_category == "processor_error"
    assert {d for d, s in result.status_by_date.items() if s == "failed"} == {wh.bad}
    assert sum(1 for s in result.status_by_date.values() if s == "success") == 99
    assert result.rows_by_date[wh.bad] == 0 and all(result.rows_by_date[d] > 0 for d in days if d != wh.bad)
    assert wh.writes <= 2 * 7 + 1  # the batch, then about two writes per level of the bisection

    # The dependents: team_defense_zone_analysis reads each team's last 15 games and 30 days.
    ran = {("team_defense_game_summary", d): result.date_status(d) for d in days}
    check = UpstreamCheck(SPEC, cal, wh, lambda keys: {k: ran[k] for k in keys if k in ran})
    plan = build_plan(SPEC, cal, PlanRequest(ranges=((days[0], days[-1]),),
                                             processors=frozenset({"team_defense_zone_analysis"}),
                                             batch_sizes={"team_defense_zone_analysis": 100}))
    zone = [execute_task(task, wh, SPEC, check=check, calendar=cal) for task in plan.tasks()]
    failed = {d for r in zone for d, s in r.status_by_date.items() if s == "failed"}
    # Independent of the planner: a date needs the bad date when some team played on it among its
    # last 15 games before the date, or it lies within the 30 days before.
    games = wh.query("SELECT game_date AS d, home_team AS h, away_team AS a FROM nba_raw.schedule "
                     "WHERE season = '2023-24' AND season_type IN ('regular', 'play_in', 'playoffs')")
    by_team: dict[str, list[dt.date]] = {}
    for g in games:
        for team in (g["h"], g["a"]):
            by_team.setdefault(team, []).append(g["d"])
    expected = {d for d in days if d > wh.bad and (
        (d - wh.bad).days <= 30 or any(wh.bad in sorted(x for x in ds if x < d)[-15:] for ds in by_team.values()))}
    assert failed == expected and 0 < len(failed) < 99
    assert all(r.status_by_date[d] == "success" for r in zone for d in r.dates if d not in failed)
    wh.close()
