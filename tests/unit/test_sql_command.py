"""`backfill sql FILE`: BigQuery SQL from a file on the warehouse, with its exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from backfill.cli import cli


def run(tmp_path: Path, *args: str) -> object:
    return CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{tmp_path / 'w.duckdb'}", "sql", *args])


def test_statements_run_in_order_and_selects_print_their_rows(tmp_path: Path) -> None:
    file = tmp_path / "q.sql"
    file.write_text("-- BigQuery SQL\nCREATE SCHEMA IF NOT EXISTS ds;\nCREATE TABLE ds.t (d DATE, n INT64);\n"
                    "INSERT INTO ds.t VALUES (DATE '2024-01-01', 2), (DATE '2024-01-03', 5);\n"
                    "SELECT DATE_DIFF(LEAD(d) OVER (ORDER BY d), d, DAY) AS gap FROM ds.t ORDER BY d;\n-- done\n")
    result = run(tmp_path, "--json", str(file))
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    doc = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert [d["statement"] for d in doc] == [1, 2, 3, 4] and doc[3]["rows"] == [{"gap": 2}, {"gap": None}]


def test_a_missing_file_or_bad_sql_is_exit_2_and_a_failing_statement_exit_1(tmp_path: Path) -> None:
    assert run(tmp_path, str(tmp_path / "nope.sql")).exit_code == 2  # type: ignore[attr-defined]
    bad = tmp_path / "bad.sql"
    bad.write_text("SELEC 1 FROM;")
    assert run(tmp_path, str(bad)).exit_code == 2  # type: ignore[attr-defined]
    failing = tmp_path / "failing.sql"
    failing.write_text("CREATE SCHEMA IF NOT EXISTS ds;\nSELECT * FROM ds.missing;\n")
    result = run(tmp_path, str(failing))
    assert result.exit_code == 1 and "statement 2 failed" in result.output  # type: ignore[attr-defined]
    assert "statements 1 to 1 ran" in result.output  # type: ignore[attr-defined]
