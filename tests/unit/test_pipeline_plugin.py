"""Pipeline-specific commands come from the pipeline's plugin (`plugin:` in pipeline.yaml), never from
the library: `backfill data` offers what the configured pipeline's plugin offers, and a pipeline
without one gets a clear exit 2 that changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from backfill.cli import cli
from backfill.cli.plugin import PipelinePlugin, plugin_of
from backfill.errors import SpecError
from backfill.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
SPEC = """name: tiny
schedule_table: raw.schedule
raw_tables:
  raw.schedule: {partition: game_date}
processors:
  daily:
    phase: 3
    target: out.daily
    sql: daily.sql
    depends_on: [{table: raw.schedule}]
"""


def tiny_pipeline(folder: Path, extra: str = "") -> Path:
    """A one-processor pipeline with no plugin (plus `extra` top-level lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.yaml").write_text(SPEC.replace("name: tiny\n", f"name: tiny\n{extra}"), encoding="utf-8")
    (folder / "daily.sql").write_text("SELECT game_date FROM raw.schedule\n", encoding="utf-8")
    return folder


def test_the_reference_pipeline_brings_data_sample_import_nba_and_the_demo() -> None:
    plugin = plugin_of(load_spec(REPO / "pipelines" / "nba"))
    assert sorted(c.name or "" for c in plugin.data_commands) == ["import-nba", "sample"]
    assert plugin.demo is not None and plugin.demo.phases == frozenset({3, 4}) and plugin.demo.season == "2023-24"
    out = CliRunner().invoke(cli, ["data", "--help"], env={"BACKFILL_PIPELINE": str(REPO / "pipelines" / "nba")})
    assert out.exit_code == 0 and "import-nba" in out.output and "sample" in out.output, out.output


def test_a_pipeline_without_a_plugin_has_no_data_commands_and_no_demo(tmp_path: Path) -> None:
    tiny = str(tiny_pipeline(tmp_path / "tiny"))
    assert plugin_of(load_spec(tiny)) == PipelinePlugin()
    target = tmp_path / "w.duckdb"
    out = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "--warehouse", f"duckdb:///{target}",
                                   "data", "sample"], env={"BACKFILL_PIPELINE": tiny})
    assert out.exit_code == 2 and "no data command 'sample'" in out.output and "plugin" in out.output, out.output
    demo = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "demo"], env={"BACKFILL_PIPELINE": tiny})
    assert demo.exit_code == 2 and "has no demo" in demo.output, demo.output
    assert not target.exists() and not (tmp_path / "home").exists()  # nothing created, no Redis started


def test_a_plugin_that_is_not_a_module_function_reference_fails_when_the_spec_loads(tmp_path: Path) -> None:
    tiny_pipeline(tmp_path, "plugin: not_a_reference\n")
    with pytest.raises(SpecError, match="plugin 'not_a_reference' must be 'package.module:function'"):
        load_spec(tmp_path)


def test_a_plugin_that_returns_something_else_is_a_spec_error(tmp_path: Path) -> None:
    tiny_pipeline(tmp_path, "plugin: odd_plugin:make\n")
    (tmp_path / "odd_plugin.py").write_text("def make():\n    return {'data_commands': ()}\n", encoding="utf-8")
    with pytest.raises(SpecError, match="returned dict, not a PipelinePlugin"):
        plugin_of(load_spec(tmp_path))
