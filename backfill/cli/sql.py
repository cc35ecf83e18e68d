"""`backfill sql FILE`: run BigQuery SQL from a file on the configured warehouse, as written.

The users' own queries (their validation queries, their run-history DDL) are BigQuery SQL; on
the embedded DuckDB warehouse they run through the same sqlglot translation every processor's SQL
takes, so a query checked here reads the same tables the same way it will on BigQuery. Each
statement's rows are printed (or, with --json, every statement's rows as one JSON list).
Exit codes: 0 ran, 2 the file is missing or a statement does not parse, 3 the warehouse cannot
be opened, 1 a statement failed in the warehouse (the ones before it have run).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
import sqlglot
from rich.console import Console
from rich.table import Table

from backfill.cli.context import CliContext
from backfill.errors import BadInput, ProblemsFound, WarehouseError
from backfill.warehouse import open_warehouse


def statements(text: str, where: str) -> list[tuple[str, bool]]:
    """The file's statements in BigQuery's dialect (comments dropped), and whether each returns rows."""
    try:
        trees = sqlglot.parse(text, read="bigquery")
    except sqlglot.errors.ParseError as exc:
        raise BadInput(f"{where}: not BigQuery SQL: {str(exc).splitlines()[0]}",
                       hint="check the statement it names; every statement ends with `;`") from None
    out = [(t.sql(dialect="bigquery", comments=False), isinstance(t, sqlglot.exp.Query)) for t in trees
           if t is not None]
    return [(text, rows) for text, rows in out if text.strip()]  # a trailing comment is no statement


@click.command("sql")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print every statement's rows as one JSON list.")
@click.pass_obj
def sql(obj: CliContext, file: Path, as_json: bool) -> None:
    """Run the BigQuery SQL statements of FILE on the warehouse and print each one's rows."""
    if not file.is_file():
        raise BadInput(f"no SQL file {file}", hint="pass the path of a .sql file")
    todo = statements(file.read_text(encoding="utf-8"), str(file))
    # DuckDB has no PARTITION BY / CLUSTER BY: the translation drops them, which is all sqlglot's
    # warnings about them would say.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    url = obj.settings.warehouse_url
    warehouse = open_warehouse(url, hold=False) if url.startswith("duckdb:") else obj.warehouse()
    results: list[dict[str, Any]] = []
    console = Console()
    try:
        for i, (text, returns_rows) in enumerate(todo, 1):
            try:
                rows = warehouse.query(text) if returns_rows else []
                if not returns_rows:
                    warehouse.execute(text)
            except WarehouseError as exc:
                ran = f"statements 1 to {i - 1} ran" if i > 1 else "no statement ran"
                raise ProblemsFound(f"{file} statement {i} failed: {exc.message}", hint=ran) from exc
            results.append({"statement": i, "rows": rows})
            if not as_json:
                _print(console, i, text, rows, returns_rows)
    finally:
        if url.startswith("duckdb:"):
            warehouse.close()
    if as_json:
        click.echo(json.dumps(results, default=str))


def _print(console: Console, i: int, text: str, rows: list[dict[str, Any]], returns_rows: bool) -> None:
    if not returns_rows:
        console.print(f"statement {i}: {text.split(None, 1)[0].upper()} done", highlight=False)
        return
    console.print(f"statement {i}: {len(rows)} row(s)", highlight=False)
    if not rows:
        return
    table = Table(show_edge=False)
    for col in rows[0]:
        table.add_column(str(col))
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r.values()))
    console.print(table)
