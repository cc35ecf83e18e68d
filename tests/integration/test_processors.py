"""The NBA processors on real DuckDB files: failures stay in their task, names resolve or are listed."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb
import pytest

from backfill.calendar import Calendar
from backfill.executor import execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.planner.model import Task
from backfill.spec import PipelineSpec, load_spec
from backfill.warehouse import Warehouse
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba import registry
from pipelines.nba.names import player_lookup
from tests.conftest import require_nba_data

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipelines" / "nba"
WEEK = (dt.date(2023, 10, 24), dt.date(2023, 10, 31))


def sample_league(tmp_path_factory: pytest.TempPathFactory, name: str,
                  work: Callable[[PipelineSpec, Warehouse], Iterable[Task]]) -> Path:
    """The sample league's 2023-24 season in a new DuckDB file, with the tasks `work(spec, w)` executed
    in their order, each ok."""
    from pipelines.nba.sample import load_sample

    path = tmp_path_factory.mktemp("sample") / name
    spec = load_spec(PIPELINE)
    with DuckDBWarehouse(path) as w:
        load_sample(w, seasons=("2023-24",), seed=7)
        for t in work(spec, w):
            assert execute_task(t, w, spec).ok, t.id
    return path


def working_copy(src: Path, tmp_path: Path) -> Path:
    """A copy of a module fixture's warehouse file that a test may change."""
    path = tmp_path / "copy.duckdb"
    shutil.copy(src, path)
    return path


@pytest.fixture(scope="module")
def sample_week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample league's first week, every Phase 3 and 4 task executed in plan order."""
    return sample_league(tmp_path_factory, "week.duckdb", lambda spec, w: tasks(spec, w, WEEK))


def tasks(spec: PipelineSpec, w: Warehouse, span: tuple[dt.date, dt.date],
          processors: frozenset[str] | None = None) -> list[Task]:
    plan = build_plan(spec, Calendar.from_warehouse(w, spec.schedule_table),
                      PlanRequest(ranges=(span,), processors=processors))
    return list(plan.tasks())


def table_digest(path: Path, table: str) -> tuple[int, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        n, h = con.execute(f"SELECT COUNT(*), SUM(HASH(CAST(t AS VARCHAR))) FROM {table} AS t").fetchone()  # type: ignore[misc]
        return int(n), int(h or 0)
    finally:
        con.close()


def test_bad_sql_fails_only_its_tasks_and_leaves_the_table_unchanged(sample_week: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "nba"
    shutil.copytree(PIPELINE, pipeline)
    broken = pipeline / "sql" / "team_defense_zone_analysis.sql"
    broken.write_text(broken.read_text().replace("SELECT", "SELEKT", 1))
    spec = load_spec(pipeline)
    path = working_copy(sample_week, tmp_path)
    before = table_digest(path, "nba_precompute.team_defense_zone_analysis")
    assert before[0] > 0
    with DuckDBWarehouse(path) as w:
        results = [execute_task(t, w, spec) for t in tasks(spec, w, WEEK)]
    failed = [r for r in results if not r.ok]
    assert failed and {r.processor for r in failed} == {"team_defense_zone_analysis"}
    assert {r.error_category for r in failed} == {"processor_error"}
    assert all("team_defense_zone_analysis.sql" in (r.error_message or "") for r in failed)
    assert table_digest(path, "nba_precompute.team_defense_zone_analysis") == before


def test_sample_week_row_counts_per_date(sample_week: Path) -> None:
    spec = load_spec(PIPELINE)
    with DuckDBWarehouse(sample_week) as w:
        cal = Calendar.from_warehouse(w, "nba_raw.schedule")
        days = cal.game_dates_between(*WEEK)
        for name in spec.order:
            counts = w.row_counts(spec.processors[name].target, "game_date", *WEEK)
            print(name, {d.isoformat(): n for d, n in counts.items()})
            assert counts and set(counts) <= set(days), name
            # Tables read from same-date raw data cover every date; lookback tables start once their
            # windows hold something (opening night has no earlier games; the daily cache needs 3).
            if name in ("player_game_summary", "team_offense_game_summary", "upcoming_team_game_context"):
                assert set(counts) == set(days), name
        teams = w.query("SELECT game_date, COUNT(*) AS n FROM nba_analytics.team_offense_game_summary GROUP BY 1")
        games = w.query("SELECT game_date, 2 * COUNT(*) AS n FROM nba_raw.schedule "
                        "WHERE game_date BETWEEN @a AND @b GROUP BY 1", {"a": WEEK[0], "b": WEEK[1]})
        assert {r["game_date"]: r["n"] for r in teams} == {r["game_date"]: r["n"] for r in games}


def test_sql_player_lookup_matches_the_python_one(sample_week: Path) -> None:
    names = ["Nikola Jokić", "Jaren Jackson Jr.", "Robert Williams III", "B.J. Boston Jr", "Kristaps Porziņģis",
             "Alperen Şengün", "Dāvis Bertāns", "Gary Payton II", "Shai Gilgeous-Alexander", "De'Aaron Fox",
             "Théo Maledon", "Jonas Valančiūnas", "Nikola Vučević", "Dennis Schröder", "Juan Hernangómez"]
    with DuckDBWarehouse(sample_week) as w:
        names += [r["player_name"] for r in w.query("SELECT DISTINCT player_name FROM nba_raw.player_boxscores")]
        names += [r["player_name"] for r in w.query("SELECT DISTINCT player_name FROM nba_raw.prop_lines")]
        got = w.query(f"SELECT n, {registry.lookup_sql('n')} AS lookup FROM UNNEST(@names) AS n", {"names": names})
    assert {r["n"]: r["lookup"] for r in got} == {n: player_lookup(n) for n in names}


@pytest.fixture(scope="module")
def real_props(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real 2024-25 box scores and prop lines, the season whose feed spells `Herb Jones`, `Moe Wagner`."""
    from pipelines.nba.importer import import_nba

    data = require_nba_data("player_logs/player_logs_2024-25.csv", "prop_lines")
    subset = tmp_path_factory.mktemp("nba") / "data"
    (subset / "player_logs").mkdir(parents=True)
    (subset / "player_logs" / "player_logs_2024-25.csv").symlink_to(data / "player_logs" / "player_logs_2024-25.csv")
    (subset / "prop_lines").symlink_to(data / "prop_lines")
    path = subset.parent / "real.duckdb"
    with DuckDBWarehouse(path) as w:
        import_nba(w, subset)
    return path


FEED_NAMES = ("Herb Jones", "Moe Wagner")
BOTH_PLAY = (dt.date(2024, 12, 15), dt.date(2024, 12, 21))
BOTH_LISTED = {dt.date(2024, 12, 15), dt.date(2024, 12, 19), dt.date(2024, 12, 21)}  # both names in the feed


def test_real_prop_feed_nicknames_resolve_through_the_aliases(nba_data_dir: Path, real_props: Path,
                                                             tmp_path: Path) -> None:
    spec = load_spec(PIPELINE)
    path = working_copy(real_props, tmp_path)
    with DuckDBWarehouse(path) as w:
        results = [execute_task(t, w, spec)
                   for t in tasks(spec, w, BOTH_PLAY, frozenset({"player_game_summary"}))]
        assert all(r.status == "success" for r in results)
        lines = w.query("SELECT player_name, COUNT(points_line) AS n FROM nba_analytics.player_game_summary "
                        "WHERE player_name IN ('Herbert Jones', 'Moritz Wagner') GROUP BY 1")
    assert {r["player_name"]: r["n"] > 0 for r in lines} == {"Herbert Jones": True, "Moritz Wagner": True}


def test_real_unresolved_prop_names_are_listed_once_and_counted(nba_data_dir: Path, real_props: Path,
                                                               tmp_path: Path) -> None:
    spec = load_spec(PIPELINE)
    path = working_copy(real_props, tmp_path)
    with DuckDBWarehouse(path) as w:
        w.execute("DELETE FROM nba_reference.player_aliases WHERE alias_lookup IN ('herbjones', 'moewagner')")
        work = tasks(spec, w, BOTH_PLAY, frozenset({"player_game_summary", "upcoming_player_game_context"}))
        first = [execute_task(t, w, spec) for t in work]
        again = [execute_task(t, w, spec) for t in reversed(work)]  # reruns in another order
        listed = w.query("SELECT player_name, source, first_seen, last_seen, count FROM "
                         "nba_reference.unresolved_players ORDER BY player_name")
        feed = w.query("SELECT player_name, MIN(game_date) AS a, MAX(game_date) AS b, "
                       "COUNT(DISTINCT game_date) AS n FROM nba_raw.prop_lines "
                       "WHERE player_name IN UNNEST(@names) GROUP BY 1 ORDER BY 1", {"names": list(FEED_NAMES)})
    # Only these dates' player_game_summary ran, so the context's 10-game windows are mostly
    # empty: its tasks say so (empty_output / partial), and still list the unresolved names.
    assert all(r.status == "success" for r in first + again if r.processor == "player_game_summary")
    assert {r.error_category for r in first + again if r.processor != "player_game_summary"} <= {
        None, "empty_output", "partial_data"}
    assert all(r.unresolved_players >= 2 for r in first + again if set(r.dates) & BOTH_LISTED)
    assert any("did not resolve" in msg for r in first for msg in r.warnings)
    assert [(r["player_name"], r["source"]) for r in listed] == [(n, "prop_lines") for n in FEED_NAMES]
    assert [(r["first_seen"], r["last_seen"], r["count"]) for r in listed] == [(f["a"], f["b"], f["n"]) for f in feed]


@pytest.fixture(scope="module")
def across_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample league's Phase 3 from opening night, Phase 4 on the week around day 14."""

    def work(spec: PipelineSpec, w: Warehouse) -> list[Task]:
        cal = Calendar.from_warehouse(w, "nba_raw.schedule")
        opening = cal.seasons["2023-24"].start
        boundary = opening + dt.timedelta(days=spec.bootstrap_days)
        around = (boundary - dt.timedelta(days=4), boundary + dt.timedelta(days=3))
        batches = {name: 10 for name, p in spec.processors.items() if p.phase == 3}
        phase3 = build_plan(spec, cal, PlanRequest(ranges=((opening, around[1]),), phases=frozenset({3}),
                                                   batch_sizes=batches))
        phase4 = build_plan(spec, cal, PlanRequest(ranges=(around,), phases=frozenset({4})))
        return [*phase3.tasks(), *phase4.tasks()]

    return sample_league(tmp_path_factory, "boundary.duckdb", work)


def test_bootstrap_marks_exactly_the_first_bootstrap_days_of_the_season(across_bootstrap: Path) -> None:
    spec = load_spec(PIPELINE)
    with DuckDBWarehouse(across_bootstrap) as w:
        rows = w.query("SELECT f.game_date, LOGICAL_AND(f.bootstrap) AS all_boot, LOGICAL_OR(f.bootstrap) AS any_boot, "
                       "MIN(f.feature_quality) AS lo, MAX(f.feature_quality) AS hi, ANY_VALUE(s.first) AS first "
                       "FROM nba_precompute.ml_feature_store AS f "
                       "JOIN (SELECT season, MIN(game_date) AS first FROM nba_raw.schedule GROUP BY 1) AS s "
                       "USING (season) GROUP BY 1 ORDER BY 1")
    expected = {r["game_date"]: (r["game_date"] - r["first"]).days < spec.bootstrap_days for r in rows}
    assert set(expected.values()) == {True, False}  # the dates straddle the boundary
    assert {r["game_date"]: (r["all_boot"], r["any_boot"]) for r in rows} == {d: (b, b) for d, b in expected.items()}
    assert all(0 <= r["lo"] <= r["hi"] <= 1 for r in rows)
    # Features fill in as windows grow: after the boundary, some rows have every feature.
    assert max(r["hi"] for r in rows if not expected[r["game_date"]]) == 1


def test_every_sql_file_returns_rows_with_exactly_the_declared_columns(sample_week: Path, tmp_path: Path) -> None:
    """Each SQL, transpiled to DuckDB, over the sample week: rows, and the spec's columns and types."""
    spec = load_spec(PIPELINE)
    path = working_copy(sample_week, tmp_path)
    with DuckDBWarehouse(path) as w:
        for name in spec.order:
            proc = spec.processors[name]
            assert proc.sql is not None
            sql = proc.sql.read_text()
            assert "@start_date" in sql and "@end_date" in sql, name
            w.execute(f"CREATE TABLE scratch_{name} AS SELECT * FROM ({sql}) AS q",
                      {"start_date": WEEK[0], "end_date": WEEK[1],
                       "window_start": WEEK[0] - dt.timedelta(days=366)})
            assert w.query(f"SELECT COUNT(*) AS n FROM main.scratch_{name}")[0]["n"] > 0, name
            assert w.table_columns(f"main.scratch_{name}") == {c.name: c.type for c in proc.columns}, name
