"""A bad file or a truncated export never reaches the warehouse (issue 7, "safe imports").

Each test edits a copy of the real NBA CSVs the way exports really break (a column dropped, a
date format changed, a file cut short) and runs `backfill data import-nba` on a copy of a
warehouse that already holds the good data. Refused imports must exit 2 with one line naming
the file, the column and the fix, and leave every table's rows exactly as they were (row count
and an order-independent checksum of every row of every table).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from backfill.cli import cli
from tests.conftest import require_nba_data

# Two seasons, their playoffs and the prop lines: every layout and every raw table, at ~40% of the time.
SUBSET = ("player_logs/player_logs_2023-24.csv", "player_logs/player_logs_2024-25.csv",
          "playoff_player_logs/P24.csv", "playoff_player_logs/P25.csv", "prop_lines")
SEASON_FILE = "player_logs/player_logs_2023-24.csv"
PLAYOFF_FILE = "playoff_player_logs/P24.csv"

Snapshot = dict[str, tuple[int, int]]


def _import(warehouse: Path, data: Path, *extra: str) -> Result:
    return CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{warehouse}", "data", "import-nba", str(data),
                                    "--quiet", *extra])


def snapshot(warehouse: Path) -> Snapshot:
    """(rows, checksum) of every table in the file, scratch tables included, so leftovers show."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                             "WHERE table_schema NOT IN ('information_schema', 'pg_catalog')").fetchall()
        out = {}
        for schema, table in tables:
            n, checksum = con.execute(f"SELECT COUNT(*), COALESCE(SUM(hash(t)), 0) FROM {schema}.{table} t"
                                      ).fetchone() or (0, 0)
            out[f"{schema}.{table}"] = (int(n), int(checksum))
    return out


def season_rows(warehouse: Path, table: str, season: str) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        row = con.execute(f"SELECT COUNT(*) FROM {table} WHERE season = ?", [season]).fetchone()
    return int(row[0]) if row else 0


def rewrite(path: Path, change: Callable[[list[str], list[list[str]]], tuple[list[str], list[list[str]]]]) -> None:
    """Rewrite a CSV through `change(header, rows) -> (header, rows)`."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        header, *rows = list(csv.reader(fh))
    header, rows = change(header, rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *rows])


def drop_column(name: str) -> Callable[[list[str], list[list[str]]], tuple[list[str], list[list[str]]]]:
    def change(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
        i = header.index(name)
        return header[:i] + header[i + 1:], [r[:i] + r[i + 1:] for r in rows]
    return change


def spoil(name: str, value: Callable[[str], str], every: int = 1
          ) -> Callable[[list[str], list[list[str]]], tuple[list[str], list[list[str]]]]:
    """Replace column `name` by `value(old)` in every `every`-th row (every=1: all rows)."""
    def change(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
        i = header.index(name)
        return header, [[*r[:i], value(r[i]), *r[i + 1:]] if n % every == 0 else r for n, r in enumerate(rows)]
    return change


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Snapshot]:
    """A copy of the real data subset, and a warehouse that imported it (with its snapshot)."""
    real = require_nba_data(*SUBSET)
    root = tmp_path_factory.mktemp("safe")
    data = root / "data"
    for rel in SUBSET:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (real / rel).is_dir() else shutil.copy)(real / rel, data / rel)
    warehouse = root / "good.duckdb"
    result = _import(warehouse, data)
    assert result.exit_code == 0, result.output
    return data, warehouse, snapshot(warehouse)


@pytest.fixture
def copies(good: tuple[Path, Path, Snapshot], tmp_path: Path) -> tuple[Path, Path, Snapshot]:
    """Fresh copies of the data and of the imported warehouse, for one test to spoil."""
    data, warehouse, before = good
    shutil.copytree(data, tmp_path / "data")
    shutil.copy(warehouse, tmp_path / "w.duckdb")
    return tmp_path / "data", tmp_path / "w.duckdb", before


def error_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_the_good_import_has_every_table_and_no_scratch_tables(good: tuple[Path, Path, Snapshot]) -> None:
    _, _, before = good
    assert {"nba_raw.schedule", "nba_raw.player_boxscores", "nba_raw.team_boxscores", "nba_raw.prop_lines",
            "nba_reference.player_registry", "nba_reference.player_aliases"} == set(before)
    assert all(n > 0 for n, _ in before.values()), before


def test_a_file_without_pts_is_exit_2_and_changes_nothing(copies: tuple[Path, Path, Snapshot]) -> None:
    data, warehouse, before = copies
    rewrite(data / SEASON_FILE, drop_column("PTS"))
    result = _import(warehouse, data)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "player_logs/player_logs_2023-24.csv has no PTS column" in line and "re-export" in line, line
    assert snapshot(warehouse) == before


def test_a_file_without_game_date_is_exit_2_and_changes_nothing(copies: tuple[Path, Path, Snapshot]) -> None:
    data, warehouse, before = copies
    rewrite(data / PLAYOFF_FILE, drop_column("GAME_DATE"))
    result = _import(warehouse, data, "--json")
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "playoff_player_logs/P24.csv has no GAME_DATE column" in line, line
    assert snapshot(warehouse) == before


def test_a_date_column_in_another_format_is_exit_2_and_changes_nothing(copies: tuple[Path, Path, Snapshot]
                                                                       ) -> None:
    data, warehouse, before = copies
    # 2023-10-28 -> 28.10.2023: every GAME_DATE still present, none of them a date we read.
    rewrite(data / SEASON_FILE, spoil("GAME_DATE", lambda d: ".".join(reversed(d.split("-")))))
    result = _import(warehouse, data)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "player_logs_2023-24.csv: column GAME_DATE does not parse as a date" in line, line
    assert "write every GAME_DATE as YYYY-MM-DD" in line and "(e.g. '28.10.2023')" in line, line
    assert snapshot(warehouse) == before


def test_a_file_whose_rows_mostly_fail_to_parse_is_exit_2(copies: tuple[Path, Path, Snapshot]) -> None:
    data, warehouse, before = copies
    rewrite(data / SEASON_FILE, spoil("PTS", lambda _: "n/a", every=3))  # a third of the rows: still imports
    rewrite(data / "player_logs/player_logs_2024-25.csv", spoil("MIN", lambda _: "DNP", every=1))
    result = _import(warehouse, data)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "player_logs/player_logs_2024-25.csv:" in line and "rows fail to parse" in line, line
    assert "column MIN" in line and "'DNP'" in line, line
    assert snapshot(warehouse) == before


def test_a_few_bad_rows_are_skipped_and_counted_by_reason(copies: tuple[Path, Path, Snapshot]) -> None:
    data, warehouse, before = copies
    rewrite(data / SEASON_FILE, spoil("PTS", lambda _: "n/a", every=50))  # 2%: under the shrink tolerance
    result = _import(warehouse, data, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    with (data / SEASON_FILE).open(encoding="utf-8") as fh:
        spoiled = sum(1 for row in csv.DictReader(fh) if row["PTS"] == "n/a")
    assert payload["skipped"]["player_logs_2023-24.csv"] == {"bad_number:PTS": spoiled}
    assert payload["skipped_by_reason"]["bad_number:PTS"] == spoiled
    assert payload["shrunk"] == []
    after = snapshot(warehouse)
    assert after["nba_raw.player_boxscores"][0] == before["nba_raw.player_boxscores"][0] - spoiled


def test_a_shrink_over_5_percent_needs_allow_shrink_and_restoring_is_idempotent(
        copies: tuple[Path, Path, Snapshot], good: tuple[Path, Path, Snapshot]) -> None:
    data, warehouse, before = copies
    now = season_rows(warehouse, "nba_raw.player_boxscores", "2023-24")
    rewrite(data / SEASON_FILE, lambda header, rows: (header, rows[: len(rows) * 8 // 10]))  # a cut-off export
    refused = _import(warehouse, data)
    assert refused.exit_code == 2, refused.output
    line = error_line(refused)
    assert f"nba_raw.player_boxscores 2023-24: {now:,} rows now" in line and "--allow-shrink" in line, line
    assert snapshot(warehouse) == before

    allowed = _import(warehouse, data, "--allow-shrink", "--json")
    assert allowed.exit_code == 0, allowed.output
    payload = json.loads(allowed.output)
    new = payload["rows_per_season"]["nba_raw.player_boxscores"]["2023-24"]
    assert new < now * 0.95 and season_rows(warehouse, "nba_raw.player_boxscores", "2023-24") == new
    assert payload["before_per_season"]["nba_raw.player_boxscores"]["2023-24"] == now
    assert any(s.startswith("nba_raw.player_boxscores 2023-24") for s in payload["shrunk"])

    good_data, _, _ = good  # the full files again: growing back needs no flag, twice changes nothing
    for _ in range(2):
        again = _import(warehouse, good_data)
        assert again.exit_code == 0, again.output
        assert snapshot(warehouse) == before
