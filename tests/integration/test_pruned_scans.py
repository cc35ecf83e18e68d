"""Pruned scans: a lookback task reads no upstream partition older than its window's start.

Every processor's SQL gets `@window_start`, the earliest partition any declared window of its
dates reads, and filters its upstream tables' partition column with it, so on BigQuery a task
is billed for its window, not for a year of history. Three claims, each able to fail:
- the parameter the executor sends is the window start, computed here independently from the
  schedule's rows (not with the calendar's own `resolve`);
- every partitioned upstream table the SQL reads is filtered on its partition column by
  `@window_start` or `@start_date` (parsed with sqlglot, so a new unfiltered read shows);
- deleting every upstream partition before the window start leaves the output identical.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from backfill.calendar import Calendar
from backfill.executor import execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.planner.model import task_id
from backfill.spec import Dependency, load_spec
from backfill.warehouse.duckdb import DuckDBWarehouse
from backfill.warehouse.schema import TableSchema

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "pipelines" / "nba")
START, DAY = dt.date(2023, 10, 24), dt.date(2023, 12, 8)
LOOKBACK = [n for n in SPEC.order if any(d.window.kind != "same_date" for d in SPEC.processors[n].depends_on)]
GAME_TYPES = ("regular", "play_in", "playoffs")

pytestmark = pytest.mark.slow


class RecordingWarehouse(DuckDBWarehouse):
    """The real DuckDB warehouse, remembering the parameters each partition write was sent."""

    sent: list[dict[str, Any]]

    def replace_partitions(self, table: TableSchema, dates: Sequence[dt.date], select_sql: str,
                           params: Mapping[str, Any] | None = None, **kwargs: Any) -> int:
        self.sent.append(dict(params or {}))
        return super().replace_partitions(table, dates, select_sql, params, **kwargs)


@pytest.fixture(scope="module")
def mid_season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six weeks of the sample league's Phase 3, and Phase 4 on DAY."""
    from pipelines.nba.sample import load_sample

    path = tmp_path_factory.mktemp("pruned") / "base.duckdb"
    with DuckDBWarehouse(path) as w:
        # Two seasons: a season-to-date window starts at its season, so the season before is
        # what must not be read.
        load_sample(w, seasons=("2022-23", "2023-24"), seed=7)
        cal = Calendar.from_warehouse(w, "nba_raw.schedule")
        plan = build_plan(SPEC, cal, PlanRequest(ranges=((START, DAY),), phases=frozenset({3})))
        phase4 = build_plan(SPEC, cal, PlanRequest(ranges=((DAY, DAY),), phases=frozenset({4})))
        for t in [*plan.tasks(), *phase4.tasks()]:
            assert execute_task(t, w, SPEC, calendar=cal).ok, t.id
    return path


def schedule_rows(path: Path) -> list[tuple[dt.date, str, str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [(d, s, h, a) for d, s, h, a in con.execute(
            "SELECT game_date, season, home_team, away_team FROM nba_raw.schedule "
            f"WHERE season_type IN {GAME_TYPES}").fetchall()]
    finally:
        con.close()


def earliest_read(dep: Dependency, day: dt.date, games: list[tuple[dt.date, str, str, str]]) -> dt.date:
    """The earliest partition one declared window reads on `day`, from the schedule's rows alone."""
    season = next(s for d, s, _, _ in games if d == day)
    dates = sorted({d for d, s, _, _ in games if s == season and d < day})
    w = dep.window
    assert not w.cross_season, "extend this test for cross-season windows"
    if w.kind == "same_date" or not dates:
        return day
    if w.kind == "season_to_date":
        return dates[0]
    if w.kind == "game_dates":
        return dates[-w.size:][0]
    if w.kind == "days":
        return min((d for d in dates if d >= day - dt.timedelta(days=w.size)), default=day)
    assert w.kind == "team_games", w.kind
    playing = {t for d, _, h, a in games if d == day for t in (h, a)}
    firsts = []
    for team in playing:
        mine = sorted({d for d, s, h, a in games if s == season and d < day and team in (h, a)})
        if mine:
            firsts.append(mine[-w.size:][0])
    return min(firsts, default=day)


def upstream_tables(name: str) -> dict[str, str]:
    """table -> partition column for every partitioned upstream the processor declares."""
    out = {}
    for dep in SPEC.processors[name].depends_on:
        if dep.is_processor:
            up = SPEC.processors[dep.source]
            out[up.target] = up.partition
        elif (part := SPEC.raw_tables[dep.source].partition) is not None:
            out[SPEC.raw_tables[dep.source].name] = part
    return out


def run_one(path: Path, name: str, cal: Calendar) -> dict[str, Any]:
    task = build_plan(SPEC, cal, PlanRequest(ranges=((DAY, DAY),), processors=frozenset({name}))
                      ).task_map()[task_id(name, DAY)]
    with RecordingWarehouse(path) as w:
        w.sent = []
        result = execute_task(task, w, SPEC, calendar=cal)
    assert result.ok, (name, result.error_message)
    assert len(w.sent) == 1, w.sent
    return w.sent[0]


def output(path: Path, name: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(f"SELECT * FROM {SPEC.processors[name].target} WHERE game_date = ?", [DAY]).fetchall()
        return sorted(rows, key=repr)
    finally:
        con.close()


@pytest.mark.parametrize("name", LOOKBACK)
def test_a_lookback_task_reads_nothing_before_its_window_start(mid_season: Path, tmp_path: Path, name: str) -> None:
    games = schedule_rows(mid_season)
    want = min(earliest_read(d, DAY, games) for d in SPEC.processors[name].depends_on)
    assert want < DAY - dt.timedelta(days=7), f"{name}: a lookback window should reach back from {DAY}"
    with DuckDBWarehouse(mid_season) as w:
        cal = Calendar.from_warehouse(w, "nba_raw.schedule")
    before = output(mid_season, name)
    assert before, f"{name} has no rows on {DAY}: nothing to compare"

    copy = tmp_path / "copy.duckdb"
    shutil.copy(mid_season, copy)
    con = duckdb.connect(str(copy))
    removed = 0
    for table, column in upstream_tables(name).items():
        removed += con.execute(f"DELETE FROM {table} WHERE {column} < ?", [want]).fetchone()[0]  # type: ignore[index]
    con.close()
    assert removed > 0, f"{name}: no upstream row lies before {want}; the check would be vacuous"

    sent = run_one(copy, name, cal)
    assert sent["window_start"] == want
    assert sent["window_start"] > DAY - dt.timedelta(days=366), "the old unpruned year of history"
    assert output(copy, name) == before


@pytest.mark.parametrize("name", list(SPEC.order))
def test_every_upstream_read_is_filtered_on_its_partition_column(name: str) -> None:
    sql = SPEC.processors[name].sql_text()
    tables = upstream_tables(name)
    tree = sqlglot.parse_one(sql, read="bigquery")
    for table in tree.find_all(exp.Table):
        full = f"{table.db}.{table.name}"
        if full not in tables:
            continue
        select = table.find_ancestor(exp.Select)
        assert select is not None, (name, full)
        # The filter sits in the SELECT's WHERE, or in the ON of the join that reads the table.
        conditions = [select.args.get("where")]
        if isinstance(table.parent, exp.Join):
            conditions.append(table.parent.args.get("on"))
        alias = table.alias_or_name
        bounds = []
        found = [c for cond in conditions if cond is not None for c in cond.find_all(exp.GTE, exp.Between, exp.EQ)]
        for cmp in found:
            col = cmp.this if isinstance(cmp, (exp.GTE, exp.Between, exp.EQ)) else None
            if not (isinstance(col, exp.Column) and col.name == tables[full] and col.table in ("", alias)):
                continue
            low = cmp.args.get("low") if isinstance(cmp, exp.Between) else cmp.expression
            bounds.append(low.sql(dialect="bigquery") if low is not None else "")
        assert any(b in ("@window_start", "@start_date") for b in bounds), (
            f"{name}: {full} is read without `{tables[full]} >= @window_start` (or @start_date): {bounds}")


def test_the_parse_check_notices_an_unfiltered_read() -> None:
    """Guard: the same walk flags a read of an upstream with no partition filter."""
    tree = sqlglot.parse_one("SELECT * FROM nba_analytics.player_game_summary WHERE game_date < @end_date",
                             read="bigquery")
    table = next(tree.find_all(exp.Table))
    where = table.find_ancestor(exp.Select).args["where"]  # type: ignore[union-attr]
    assert not [c for c in where.find_all(exp.GTE, exp.Between)]
