"""Spec loading: the real pipeline loads, and every bad spec is refused with one line naming where."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from backfill.errors import SpecError
from backfill.spec import PipelineSpec, Window, load_spec, parse_window

REPO = Path(__file__).resolve().parents[2]

HEADER = """\
name: t
raw_tables:
  nba_raw.schedule: {partition: game_date}
  nba_raw.team_boxscores: {partition: game_date}
processors:
"""


def write_spec(tmp_path: Path, processors: str, header: str = HEADER) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(header + textwrap.indent(textwrap.dedent(processors), "  "), encoding="utf-8")
    return path


def rejection(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    line = info.value.one_line()
    assert "\n" not in line, f"error spans several lines: {line!r}"
    assert info.value.exit_code == 2
    return line


def line_of(path: Path, processor: str) -> int:
    for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if text.strip() == f"{processor}:":
            return i
    raise AssertionError(f"{processor} not in {path}")


def assert_names(line: str, path: Path, processor: str) -> None:
    assert f"{path}:{line_of(path, processor)}" in line, line
    assert f"processor {processor}" in line, line


BASE = """\
a:
  phase: 3
  target: nba_analytics.a
  sql: a.sql
  depends_on:
    - table: nba_raw.team_boxscores
"""


def processor_b(*depends_on: dict[str, str], settings: str = "") -> str:
    """Processor b (Phase 4, writes nba_precompute.b) with these settings lines and `depends_on` entries,
    each a mapping of key to YAML text as written (`{"processor": "a", "window": "{game_dates: 3}"}`)."""
    text = "b:\n  phase: 4\n  target: nba_precompute.b\n  sql: b.sql\n" + settings
    if depends_on:
        text += "  depends_on:\n"
    for entry in depends_on:
        text += "".join(("    - " if i == 0 else "      ") + f"{k}: {v}\n" for i, (k, v) in enumerate(entry.items()))
    return text


def refusal_naming(path: Path, processor: str) -> str:
    """The one-line rejection of the spec at `path`, which names `processor`, its file and line."""
    line = rejection(path)
    assert_names(line, path, processor)
    return line


# -- the real pipeline --------------------------------------------------------------------

def test_real_nba_pipeline_loads_with_the_users_windows() -> None:
    spec = load_spec(REPO / "pipelines" / "nba")
    assert isinstance(spec, PipelineSpec)
    assert len(spec.processors) == 10
    assert {p.phase for p in spec.processors.values()} == {3, 4}
    tdza = [(d.source, d.window) for d in spec.processors["team_defense_zone_analysis"].depends_on]
    assert ("team_defense_game_summary", Window("team_games", 15)) in tdza
    cache = [(d.source, d.window) for d in spec.processors["player_daily_cache"].depends_on]
    assert ("player_game_summary", Window("season_to_date", 0)) in cache
    upcoming = [(d.source, d.window) for d in spec.processors["upcoming_player_game_context"].depends_on]
    assert ("player_game_summary", Window("team_games", 10)) in upcoming
    store = {d.source for d in spec.processors["ml_feature_store"].upstream_processors}
    assert store == {"player_composite_factors", "player_daily_cache", "team_defense_zone_analysis",
                     "player_shot_zone_analysis"}


def test_real_pipeline_order_puts_every_upstream_first() -> None:
    spec = load_spec(REPO / "pipelines" / "nba" / "pipeline.yaml")
    pos = {n: i for i, n in enumerate(spec.topological())}
    assert set(pos) == set(spec.processors)
    for name, proc in spec.processors.items():
        for dep in proc.upstream_processors:
            assert dep.source == name or pos[dep.source] < pos[name]


def test_self_dependency_on_earlier_dates_is_allowed(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE + processor_b({"processor": "a", "window": "{game_dates: 3}"},
                                                   {"processor": "b", "window": "{game_dates: 1}"}))
    spec = load_spec(path)
    assert spec.processors["b"].self_dependent
    assert spec.topological() == ("a", "b")


# -- rejections: one line, the file, the line, the processor ------------------------------

def test_cycle_is_rejected_naming_a_processor_of_the_cycle(tmp_path: Path) -> None:
    path = write_spec(tmp_path, """\
a:
  phase: 3
  target: nba_analytics.a
  sql: a.sql
  depends_on:
    - processor: c
b:
  phase: 3
  target: nba_analytics.b
  sql: b.sql
  depends_on:
    - processor: a
c:
  phase: 3
  target: nba_analytics.c
  sql: c.sql
  depends_on:
    - processor: b
""")
    line = rejection(path)
    assert "cycle" in line
    named = [p for p in "abc" if f"processor {p}:" in line]
    assert len(named) == 1
    assert_names(line, path, named[0])


def test_unknown_upstream_processor_is_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE + processor_b({"processor": "no_such_thing"}))
    assert "no_such_thing" in refusal_naming(path, "b")


def test_unknown_table_is_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE + processor_b({"table": "nba_raw.not_declared"}))
    assert "nba_raw.not_declared" in refusal_naming(path, "b")


@pytest.mark.parametrize("window", ["{last_games: 5}", "fortnight", "{team_games: 5, days: 3}"])
def test_unknown_window_kind_is_rejected(tmp_path: Path, window: str) -> None:
    path = write_spec(tmp_path, BASE + processor_b({"processor": "a", "window": window}))
    assert "window" in refusal_naming(path, "b")


@pytest.mark.parametrize("kind", ["game_dates", "team_games", "days"])
def test_negative_window_size_is_rejected(tmp_path: Path, kind: str) -> None:
    path = write_spec(tmp_path, BASE + processor_b({"processor": "a", "window": f"{{{kind}: -3}}"}))
    line = refusal_naming(path, "b")
    assert "negative" in line and "-3" in line


@pytest.mark.parametrize("window", ["same_date", "{game_dates: 2, include_current: true}"])
def test_self_dependency_on_the_same_date_is_rejected(tmp_path: Path, window: str) -> None:
    path = write_spec(tmp_path, BASE + processor_b({"processor": "b", "window": window}))
    refusal_naming(path, "b")


def test_batches_with_a_self_dependency_are_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE + processor_b({"processor": "b", "window": "{game_dates: 1}"},
                                                   settings="  batch_size: 5\n"))
    assert "batch_size" in refusal_naming(path, "b")


@pytest.mark.parametrize("target", ["'nba_analytics.x; DROP TABLE y'", "nba_analytics", "a.b.c",
                                    "'nba analytics.x'", "'1nba.x'"])
def test_invalid_target_identifiers_are_rejected(tmp_path: Path, target: str) -> None:
    path = write_spec(tmp_path, f"""\
a:
  phase: 3
  target: {target}
  sql: a.sql
""")
    line = rejection(path)
    assert_names(line, path, "a")
    assert "invalid" in line


def test_invalid_partition_column_is_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, """\
a:
  phase: 3
  target: nba_analytics.a
  partition: "game_date; --"
  sql: a.sql
""")
    assert_names(rejection(path), path, "a")


def test_unknown_processor_setting_is_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, """\
a:
  phase: 3
  target: nba_analytics.a
  sql: a.sql
  batchsize: 3
""")
    line = rejection(path)
    assert_names(line, path, "a")
    assert "batchsize" in line


def test_unknown_dependency_key_is_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE + processor_b({"processor": "a", "windw": "same_date"}))
    assert "windw" in refusal_naming(path, "b")


def test_unknown_window_option_is_rejected(tmp_path: Path) -> None:
    window = "{team_games: 5, cross_seasons: true}"
    path = write_spec(tmp_path, BASE + processor_b({"processor": "a", "window": window}))
    refusal_naming(path, "b")


def test_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE, header=HEADER.replace("name: t\n", "name: t\nbootstrap_dayz: 7\n"))
    line = rejection(path)
    assert str(path) in line and "bootstrap_dayz" in line


@pytest.mark.parametrize("setting,value", [("phase", "0"), ("phase", "three"), ("batch_size", "0"),
                                           ("estimate_seconds", "-1")])
def test_bad_numbers_are_rejected(tmp_path: Path, setting: str, value: str) -> None:
    path = write_spec(tmp_path, BASE + f"  {setting}: {value}\n" if setting != "phase" else
                      BASE.replace("phase: 3", f"phase: {value}"))
    assert_names(rejection(path), path, "a")


def test_processor_without_sql_or_python_is_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, """\
a:
  phase: 3
  target: nba_analytics.a
""")
    assert_names(rejection(path), path, "a")


def test_two_processors_writing_one_target_are_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE + """\
b:
  phase: 3
  target: nba_analytics.a
  sql: b.sql
""")
    line = rejection(path)
    assert_names(line, path, "b")
    assert "nba_analytics.a" in line


def test_dependency_on_a_later_phase_is_rejected(tmp_path: Path) -> None:
    path = write_spec(tmp_path, BASE.replace("phase: 3", "phase: 5") + processor_b({"processor": "a"}))
    refusal_naming(path, "b")


def test_missing_file_and_bad_yaml_are_one_line(tmp_path: Path) -> None:
    rejection(tmp_path / "nowhere")
    bad = tmp_path / "pipeline.yaml"
    bad.write_text("processors: [unclosed\n", encoding="utf-8")
    assert str(bad) in rejection(bad)


# -- windows ------------------------------------------------------------------------------

def test_parse_window_accepts_every_kind_with_options() -> None:
    assert parse_window("same_date") == Window("same_date")
    assert parse_window("season_to_date") == Window("season_to_date")
    assert parse_window({"team_games": 15}) == Window("team_games", 15)
    assert parse_window({"game_dates": 5, "include_current": True}) == Window("game_dates", 5, True)
    assert parse_window({"days": 30, "cross_season": True}) == Window("days", 30, False, True)
    assert parse_window({"season_to_date": None, "include_current": True}) == Window("season_to_date", 0, True)


@pytest.mark.parametrize("raw", [{"days": 2.5}, {"days": True}, {"days": "7"}, {"days": 3, "cross_season": "yes"},
                                 {}, 7, ["days", 3]])
def test_parse_window_refuses_malformed_windows(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_window(raw)


@pytest.mark.parametrize("value", ["two weeks", "-1", "1.5"])
def test_bad_bootstrap_days_is_rejected(tmp_path: Path, value: str) -> None:
    path = write_spec(tmp_path, BASE, header=HEADER.replace("name: t\n", f"name: t\nbootstrap_days: {value}\n"))
    assert "bootstrap_days" in rejection(path)
