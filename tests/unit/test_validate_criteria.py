"""Acceptance criteria in the spec, schedule-aware runs of dates, the spot-check sample, code versions,
the recompute commands, and a run history written before `code_version` existed."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from backfill.acceptance import PipelineAcceptance, ProcessorAcceptance, effective, parse_pipeline_acceptance
from backfill.calendar import Calendar, Game
from backfill.errors import SpecError
from backfill.executor import TaskResult
from backfill.fingerprint import code_version
from backfill.runhistory import RunHistory, history_schema
from backfill.spec import load_spec
from backfill.validate.spotcheck import sample_partitions
from backfill.validate.staleness import find_stale, game_date_runs, recompute_commands
from backfill.warehouse.duckdb import DuckDBWarehouse
from backfill.warehouse.schema import TableSchema

REPO = Path(__file__).resolve().parents[2]
D = dt.date


def tiny_spec(tmp_path: Path, acceptance: str = "", own: str = "") -> Path:
    (tmp_path / "a.sql").write_text("SELECT game_date, team, 1.0 AS minutes FROM raw.games")
    (tmp_path / "pipeline.yaml").write_text(textwrap.dedent("""\
        name: tiny
        raw_tables: {raw.games: {partition: game_date}}
        ACCEPTANCE
        processors:
          a:
            phase: 3
            target: out.a
            sql: a.sql
            columns: {game_date: {type: DATE, required: true}, team: {type: STRING, required: true}, minutes: FLOAT64}
            depends_on: [{table: raw.games}]
            OWN
        """).replace("ACCEPTANCE", acceptance).replace("OWN", own))
    return tmp_path


def test_the_nba_spec_declares_ranges_coverage_and_per_processor_overrides() -> None:
    spec = load_spec(REPO / "pipelines" / "nba")
    assert [(c.of, c.by) for c in spec.acceptance.coverage] == [("upcoming_player_game_context", "ml_feature_store")]
    pgs = spec.processors["player_game_summary"]
    crit = effective(spec.acceptance, pgs.acceptance, tuple(c.name for c in pgs.columns),
                     tuple(c.name for c in pgs.columns if c.required))
    by_col = {r.column: (r.low, r.high) for r in crit.ranges}
    assert by_col["minutes"] == (0, 60) and by_col["points"] == (0, 100) and by_col["ts_pct"] == (0, 1.5)
    assert "player_name" in crit.not_null and "plus_minus" not in crit.not_null
    team = spec.processors["team_offense_game_summary"]
    assert dict((r.column, r.high) for r in team.acceptance.ranges)["points"] == 200


@pytest.mark.parametrize(("acceptance", "own", "message"), [
    ("acceptance: {spot_checks: -1}", "", "spot_checks must be a whole number >= 0"),
    ("acceptance: {nonsense: 1}", "", "unknown acceptance setting(s) nonsense"),
    ("acceptance: {ranges: {minuts: [0, 60]}}", "", "'minuts', which is no processor's column"),
    ("acceptance: {ranges: {minutes: [60, 0]}}", "", "low 60 is above high 0"),
    ("acceptance: {min_success_rate: 2}", "", "min_success_rate must be a number from 0 to 1"),
    ("acceptance: {coverage: [{of: a, by: zz, keys: [game_date]}]}", "", "unknown processor 'zz'"),
    ("acceptance: {coverage: [{of: a, by: a, keys: [player]}]}", "", "key 'player' is not a column of a"),
    ("", "acceptance: {not_null: [nope]}", "processor a: acceptance.not_null names 'nope'"),
    ("", "acceptance: {ranges: {minutes: [0, x]}}", "must be [low, high]"),
])
def test_bad_acceptance_is_refused_at_load_naming_the_setting(tmp_path: Path, acceptance: str, own: str,
                                                              message: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(tiny_spec(tmp_path, acceptance, own))
    assert message in err.value.message
    assert str(tmp_path / "pipeline.yaml") in err.value.message


def test_pipeline_ranges_apply_by_column_and_a_processor_overrides_them() -> None:
    pipe = parse_pipeline_acceptance({"ranges": {"minutes": [0, 60], "pace": [70, None]}, "min_success_rate": 0.9},
                                     {"a": {"minutes"}, "b": {"pace"}})
    own = ProcessorAcceptance(ranges=(), min_success_rate=None, row_tolerance=0.1)
    crit = effective(pipe, own, ("game_date", "minutes"), ("game_date",))
    assert [(r.column, r.low, r.high) for r in crit.ranges] == [("minutes", 0, 60)]
    assert (crit.min_success_rate, crit.row_tolerance) == (0.9, 0.1)
    assert effective(PipelineAcceptance(), ProcessorAcceptance(), ("x",), ()).min_success_rate == 1.0


def calendar() -> Calendar:
    """Four games around an All-Star break (Feb 17-22 without games) and a hole before the playoffs."""
    days = [D(2023, 2, 15), D(2023, 2, 16), D(2023, 2, 23), D(2023, 2, 24), D(2023, 4, 15)]
    return Calendar([Game(f"g{i}", d, "2022-23", "playoffs" if d.month == 4 else "regular", "BOS", "NYK")
                     for i, d in enumerate(days)])


def test_missing_dates_group_into_runs_of_game_dates_across_the_break() -> None:
    cal = calendar()
    assert game_date_runs([D(2023, 2, 16), D(2023, 2, 23), D(2023, 4, 15)], cal) == [
        (D(2023, 2, 16), D(2023, 2, 23))] + [(D(2023, 4, 15), D(2023, 4, 15))]
    # 2023-02-24 present splits the run: missing 2023-02-23 and 2023-04-15 are two runs.
    assert game_date_runs([D(2023, 2, 15), D(2023, 2, 23), D(2023, 4, 15)], cal) == [
        (D(2023, 2, 15), D(2023, 2, 15)), (D(2023, 2, 23), D(2023, 2, 23)), (D(2023, 4, 15), D(2023, 4, 15))]


def test_recompute_commands_share_dates_in_pipeline_order_and_run_one_after_another() -> None:
    cal = calendar()
    later = [D(2023, 2, 16), D(2023, 2, 23), D(2023, 2, 24)]
    commands = recompute_commands({"up": [*later, D(2023, 2, 15)], "mid": later, "down": later}, cal, "pipes/x")
    assert commands == [
        "backfill enqueue --pipeline pipes/x --range 2023-02-15:2023-02-24 --processors up --force --wait",
        "backfill enqueue --pipeline pipes/x --range 2023-02-16:2023-02-24 --processors mid,down --force --wait"]


def test_the_spot_check_sample_is_fixed_by_its_seed() -> None:
    pool = [(p, D(2023, 1, 1) + dt.timedelta(days=i)) for p in ("a", "b", "c") for i in range(100)]
    first = sample_partitions(pool, 5, 42)
    assert first == sample_partitions(list(reversed(pool)), 5, 42)
    assert len(set(first)) == 5 and first != sample_partitions(pool, 5, 43)
    assert sample_partitions(pool[:2], 5, 1) == sorted(pool[:2])


def test_code_version_follows_the_sql_and_the_output_shape_not_the_description(tmp_path: Path) -> None:
    pipe = tiny_spec(tmp_path)
    before = code_version(load_spec(pipe).processors["a"])
    text = (pipe / "pipeline.yaml").read_text()
    (pipe / "pipeline.yaml").write_text(text.replace("phase: 3", "phase: 3\n    description: now documented"))
    assert code_version(load_spec(pipe).processors["a"]) == before
    (pipe / "a.sql").write_text("SELECT game_date, team, 2.0 AS minutes FROM raw.games")
    assert code_version(load_spec(pipe).processors["a"]) != before
    data = TaskResult("t", "a", 3, "2022-23", (D(2023, 1, 1),), "success", code_version="abc").to_json()
    assert TaskResult.from_json(data).code_version == "abc"


def test_a_run_history_without_code_version_gains_the_column_and_its_rows_are_unversioned(tmp_path: Path) -> None:
    full = history_schema("ref.history")
    old = TableSchema(full.name, tuple(c for c in full.columns if c.name != "code_version"), full.partition)
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    wh.create_table(old)
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    row = {"processor_name": "a", "phase": "phase_3", "data_date": D(2023, 2, 15), "season": "2022-23", "run_id": "r",
           "task_id": "a@2023-02-15", "status": "success", "retry_attempt": 1, "started_at": stamp,
           "processed_at": stamp}
    wh.insert_rows(old.name, [row])
    (tmp_path / "p").mkdir()
    spec = load_spec(tiny_spec(tmp_path / "p", "run_history_table: ref.history"))
    stale = find_stale(spec, calendar(), wh, ["a"], [(D(2023, 2, 1), D(2023, 2, 28))])
    assert (stale.checked, stale.unversioned, stale.stale) == (1, 1, [])
    RunHistory(wh, "ref.history").write([{**row, "data_date": D(2023, 2, 16), "task_id": "a@2023-02-16",
                                          "code_version": "v2"}])
    assert "code_version" in wh.table_columns("ref.history")
    got = {r["data_date"]: r["code_version"] for r in RunHistory(wh, "ref.history").latest()}
    assert got == {D(2023, 2, 15): None, D(2023, 2, 16): "v2"}
    stale = find_stale(spec, calendar(), wh, ["a"], [(D(2023, 2, 1), D(2023, 2, 28))])
    assert [(s.date, s.reasons[0].split(":")[0]) for s in stale.stale] == [(D(2023, 2, 16), "code changed")]
    assert stale.commands == ["backfill enqueue --range 2023-02-16:2023-02-16 --processors a --force --wait"]
    wh.close()
