"""Import the real NBA CSVs in ../shared/data/nba (or $BACKFILL_NBA_DATA); skipped when absent."""

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from backfill.cli import cli
from backfill.errors import BadInput
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba.importer import ImportSummary, default_data_dir, import_nba
from pipelines.nba.load import table_counts

DATA = default_data_dir()
pytestmark = pytest.mark.skipif(not (DATA / "player_logs").is_dir(), reason=f"no NBA data at {DATA}")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DuckDBWarehouse, ImportSummary]]:
    warehouse = DuckDBWarehouse(tmp_path_factory.mktemp("nba") / "w.duckdb")
    summary = import_nba(warehouse, DATA)
    yield warehouse, summary
    warehouse.close()


def _one(warehouse: DuckDBWarehouse, sql: str, **params: Any) -> dict[str, Any]:
    return warehouse.query(sql, params)[0]


@pytest.mark.parametrize(("season", "games", "dates", "first", "last"), [
    ("2020-21", 1080, 140, dt.date(2020, 12, 22), dt.date(2021, 5, 16)),
    ("2021-22", 1230, 165, dt.date(2021, 10, 19), dt.date(2022, 4, 10)),
    ("2022-23", 1230, 164, dt.date(2022, 10, 18), dt.date(2023, 4, 9)),
    ("2023-24", 1230, 160, dt.date(2023, 10, 24), dt.date(2024, 4, 14)),
    ("2024-25", 1230, 163, dt.date(2024, 10, 22), dt.date(2025, 4, 13)),
])
def test_regular_season_matches_the_readme(imported: tuple[DuckDBWarehouse, ImportSummary], season: str,
                                           games: int, dates: int, first: dt.date, last: dt.date) -> None:
    warehouse, _ = imported
    row = _one(warehouse, "SELECT COUNT(*) AS games, COUNT(DISTINCT game_date) AS dates, MIN(game_date) AS first, "
                          "MAX(game_date) AS last FROM nba_raw.schedule WHERE season = @s AND season_type = 'regular'",
               s=season)
    assert (row["games"], row["dates"], row["first"], row["last"]) == (games, dates, first, last)


@pytest.mark.parametrize(("season", "rows", "games", "dates"), [
    ("2020-21", 1864, 85, 47), ("2021-22", 1891, 87, 45), ("2022-23", 1728, 84, 45),
    ("2023-24", 1685, 82, 44), ("2024-25", 1804, 84, 47)])
def test_playoffs_match_the_readme_less_the_dnp_row(imported: tuple[DuckDBWarehouse, ImportSummary], season: str,
                                                    rows: int, games: int, dates: int) -> None:
    warehouse, _ = imported
    sched = _one(warehouse, "SELECT COUNT(*) AS g, COUNT(DISTINCT game_date) AS d FROM nba_raw.schedule "
                            "WHERE season = @s AND season_type = 'playoffs'", s=season)
    players = _one(warehouse, "SELECT COUNT(*) AS n FROM nba_raw.player_boxscores "
                              "WHERE season = @s AND season_type = 'playoffs'", s=season)
    assert (players["n"], sched["g"], sched["d"]) == (rows, games, dates)


def test_team_box_scores_are_summed_from_players(imported: tuple[DuckDBWarehouse, ImportSummary]) -> None:
    warehouse, _ = imported
    counts = table_counts(warehouse)
    assert counts["nba_raw.team_boxscores"] == 2 * counts["nba_raw.schedule"]
    bad = _one(warehouse, """
        SELECT COUNT(*) AS n FROM nba_raw.team_boxscores t
        JOIN (SELECT game_id, team, SUM(points) AS pts FROM nba_raw.player_boxscores GROUP BY 1, 2) p
          ON p.game_id = t.game_id AND p.team = t.team
        WHERE p.pts != t.points""")
    assert bad["n"] == 0


def test_home_and_away_come_from_the_matchup(imported: tuple[DuckDBWarehouse, ImportSummary]) -> None:
    warehouse, _ = imported
    game = _one(warehouse, "SELECT home_team, away_team, game_date FROM nba_raw.schedule WHERE game_id = '0022300091'")
    assert game == {"home_team": "CLE", "away_team": "IND", "game_date": dt.date(2023, 10, 28)}
    # Mexico City: both teams' rows read "MIA @ WAS"; each team must still get the other as opponent.
    rows = warehouse.query("SELECT team, opponent, is_home FROM nba_raw.team_boxscores "
                           "WHERE game_id = '0022400147' ORDER BY team")
    assert rows == [{"team": "MIA", "opponent": "WAS", "is_home": False},
                    {"team": "WAS", "opponent": "MIA", "is_home": True}]


def test_registry_keeps_accents_and_a_lookup(imported: tuple[DuckDBWarehouse, ImportSummary]) -> None:
    warehouse, _ = imported
    row = _one(warehouse, "SELECT player_lookup FROM nba_reference.player_registry WHERE player_name = 'Nikola Jokić'")
    assert row["player_lookup"] == "nikolajokic"
    alias = _one(warehouse, "SELECT player_lookup FROM nba_reference.player_aliases WHERE alias_lookup = 'herbjones'")
    assert alias["player_lookup"] == "herbertjones"


def test_skipped_rows_are_reported_per_file_and_reason(imported: tuple[DuckDBWarehouse, ImportSummary]) -> None:
    _, summary = imported
    assert summary.skipped["P22.csv"] == {"did_not_play": 1}
    reasons = {r for per_file in summary.skipped.values() for r in per_file}
    assert reasons <= {"did_not_play", "no_scheduled_game"}
    # The NBA Cup final (2024-12-17) is not a regular-season game, so its props match nothing.
    assert summary.skipped["12_17_2024.csv"]["no_scheduled_game"] > 0
    assert summary.skipped_total < 1000


def test_prop_lines_land_on_the_eastern_game_date(imported: tuple[DuckDBWarehouse, ImportSummary]) -> None:
    warehouse, _ = imported
    # Chris Paul's Spurs hosted the Clippers on 2024-12-31 at 7:10 pm Eastern, 00:10 UTC on Jan 1.
    row = _one(warehouse, """
        SELECT MIN(game_date) AS d, COUNT(*) AS n FROM nba_raw.prop_lines
        WHERE player_name = 'Chris Paul' AND home_team = 'SAS' AND away_team = 'LAC'
          AND commence_time = TIMESTAMP '2025-01-01 00:10:00+00'""")
    assert row["d"] == dt.date(2024, 12, 31) and row["n"] > 0
    unmatched = _one(warehouse, """
        SELECT COUNT(*) AS n FROM nba_raw.prop_lines p
        LEFT JOIN nba_raw.schedule s ON s.game_date = p.game_date
          AND ((s.home_team = p.home_team AND s.away_team = p.away_team)
            OR (s.home_team = p.away_team AND s.away_team = p.home_team))
        WHERE s.game_id IS NULL""")
    assert unmatched["n"] == 0
    season = _one(warehouse, "SELECT MIN(game_date) AS first FROM nba_raw.prop_lines")
    assert season["first"] == dt.date(2024, 10, 22)


def test_importing_again_changes_no_row_counts(imported: tuple[DuckDBWarehouse, ImportSummary]) -> None:
    warehouse, first = imported
    before = table_counts(warehouse)
    second = import_nba(warehouse, DATA)
    assert table_counts(warehouse) == before
    assert second.rows == first.rows and second.skipped == first.skipped


def test_a_directory_without_csvs_is_bad_input(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    with pytest.raises(BadInput, match="no NBA CSVs"):
        import_nba(warehouse, tmp_path)
    with pytest.raises(BadInput, match="does not exist"):
        import_nba(warehouse, tmp_path / "missing")
    warehouse.close()


def test_cli_import_prints_stable_json_and_bad_input_exits_2(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    result = CliRunner().invoke(cli, ["--warehouse", url, "data", "import-nba", str(DATA), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["command"] == "import-nba"
    assert payload["rows"]["nba_raw.schedule"] == 6422
    assert payload["skipped"]["P22.csv"] == {"did_not_play": 1}
    missing = CliRunner().invoke(cli, ["--warehouse", url, "data", "import-nba", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    bad_season = CliRunner().invoke(cli, ["--warehouse", url, "data", "sample", "--seasons", "2023"])
    assert bad_season.exit_code == 2
