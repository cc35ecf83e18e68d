"""Writing raw seasons: all or nothing, and never a silent shrink (runs without the real data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill.errors import BadInput, WarehouseError
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba import raw
from pipelines.nba.load import write_league
from pipelines.nba.sample import generate_league, load_sample
from tests.integration.test_import_safety import snapshot

SEASON = ("2023-24",)


@pytest.fixture
def loaded(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    with DuckDBWarehouse(path) as w:
        load_sample(w, seasons=SEASON, seed=7)
    return path


def test_a_value_the_warehouse_rejects_replaces_no_table(loaded: Path) -> None:
    before = snapshot(loaded)
    tables = generate_league(SEASON, seed=8)  # another league: every table would change
    tables[raw.PROP_LINES.name][-1]["line"] = "six and a half"  # staged last, after the season tables
    with DuckDBWarehouse(loaded) as w, pytest.raises(WarehouseError):
        write_league(w, tables, SEASON)
    assert snapshot(loaded) == before  # no table swapped, no scratch table left behind


def test_a_season_that_loses_over_5_percent_is_refused_unless_allowed(loaded: Path) -> None:
    before = snapshot(loaded)
    tables = generate_league(SEASON, seed=7)
    players = tables[raw.PLAYER_BOXSCORES.name]
    tables[raw.PLAYER_BOXSCORES.name] = players[: int(len(players) * 0.94)]
    with DuckDBWarehouse(loaded) as w:
        with pytest.raises(BadInput) as refused:
            write_league(w, tables, SEASON)
    line = refused.value.one_line()
    assert f"nba_raw.player_boxscores 2023-24: {len(players):,} rows now, {len(players) * 94 // 100:,} in the " \
           "import (-6.0%)" in line and "--allow-shrink" in line, line
    assert snapshot(loaded) == before
    with DuckDBWarehouse(loaded) as w:
        tables[raw.PLAYER_BOXSCORES.name] = players[: int(len(players) * 0.96)]  # within the tolerance
        write_league(w, tables, SEASON)
        tables[raw.PLAYER_BOXSCORES.name] = players[: int(len(players) * 0.5)]
        write_league(w, tables, SEASON, allow_shrink=True)
        assert w.query("SELECT COUNT(*) AS n FROM nba_raw.player_boxscores")[0]["n"] == int(len(players) * 0.5)
