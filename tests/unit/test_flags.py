"""The one builder of the selection flags every printed hint carries (backfill.planner.flags)."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path

from click.testing import CliRunner

from backfill.cli import cli
from backfill.planner.flags import selection_flags


def test_flags_come_in_one_order_with_the_folder_quoted_and_processors_over_phases() -> None:
    flags = selection_flags([(dt.date(2023, 11, 1), dt.date(2023, 11, 7)), ("2024-01-02", "2024-01-02")],
                            processors=["player_game_summary", "team_offense"], phases=[4, 3],
                            seasons=["2023-24", "2022-23"], season_types=["Playoffs"],
                            pipeline="/srv/my pipelines/nba")
    assert flags == ("--pipeline '/srv/my pipelines/nba' --range 2023-11-01:2023-11-07 --range 2024-01-02:2024-01-02 "
                     "--processors player_game_summary,team_offense --seasons 2022-23,2023-24 --season-types Playoffs")
    assert shlex.split(flags)[1] == "/srv/my pipelines/nba"  # pasted into a shell, the folder is one word
    week = [("2023-11-01", "2023-11-07")]
    assert selection_flags(week, phases={4, 3}) == "--range 2023-11-01:2023-11-07 --phases 3,4"
    assert selection_flags([]) == ""


def test_the_flags_parse_as_the_cli_expects(tmp_path: Path) -> None:
    """Each flag it writes is one `plan` accepts (refused flags exit 2 before any warehouse is read)."""
    flags = selection_flags([("2023-11-01", "2023-11-07")], processors=["player_game_summary"],
                            seasons=["2023-24"], season_types=["Regular Season"])
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "plan", "--help"])
    assert result.exit_code == 0
    for flag in (w for w in shlex.split(flags) if w.startswith("--")):
        assert flag in result.output, flag
