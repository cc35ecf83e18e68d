"""The NBA pipeline's command-line plugin (`plugin:` in pipeline.yaml): `backfill data sample`,
`backfill data import-nba` and the league `backfill demo` runs on.

The library's `data` group and `demo` command find these through the spec, so `backfill/` never
imports this package.
"""

from __future__ import annotations

import datetime as dt

import click
from rich.console import Console
from rich.table import Table

from backfill.cli.context import CliContext
from backfill.cli.plugin import Demo, PipelinePlugin, emit_json, rows_table
from backfill.errors import BadInput
from backfill.warehouse import Warehouse
from pipelines.nba.load import check_season
from pipelines.nba.sample import DEFAULT_SEASONS

DEMO_RANGE = (dt.date(2023, 11, 1), dt.date(2023, 11, 7))  # the users' 7-day test run
DEMO_SEASON = "2023-24"


def plugin() -> PipelinePlugin:
    """What this pipeline adds to the CLI."""
    return PipelinePlugin(
        data_commands=(sample, import_nba_command),
        demo=Demo(start=DEMO_RANGE[0], end=DEMO_RANGE[1], phases=frozenset({3, 4}), season=DEMO_SEASON,
                  load=_load_demo_season, data_name="the sample league",
                  # The test week is mid-season: its windows read Phase 3 back to the season start.
                  scope="the test week and the Phase 3 partitions its windows read back to the season start"))


def _load_demo_season(warehouse: Warehouse, season: str) -> None:
    from pipelines.nba.sample import load_sample

    load_sample(warehouse, seasons=(season,))


def _seasons(text: str | None) -> tuple[str, ...]:
    if not text:
        return DEFAULT_SEASONS
    seasons = tuple(check_season(s) for s in text.split(",") if s.strip())
    if not seasons:
        raise BadInput(f"--seasons {text!r} names no season: write seasons like 2022-23,2023-24")
    return seasons


@click.command()
@click.option("--seasons", default=None,
              help="Comma-separated seasons, e.g. 2022-23,2023-24 (default: 2021-22..2024-25).")
@click.option("--seed", default=7, show_default=True, type=int, help="Same seed, same league.")
@click.option("--allow-shrink", is_flag=True,
              help="Replace a season even when a table would lose more than 5% of its rows.")
@click.option("--json", "as_json", is_flag=True, help="Print a stable JSON object.")
@click.pass_obj
def sample(obj: CliContext, seasons: str | None, seed: int, allow_shrink: bool, as_json: bool) -> None:
    """Generate the synthetic league and replace those seasons in the warehouse."""
    from pipelines.nba.sample import load_sample

    summary = load_sample(obj.warehouse(create=True), _seasons(seasons), seed, allow_shrink=allow_shrink)
    if as_json:
        emit_json({"command": "sample", **summary.to_dict()})
        return
    console = Console()
    console.print(rows_table(f"sample league, seed {seed}", summary.rows, summary.rows_per_season))
    console.print(f"loaded {', '.join(summary.seasons)} in {summary.seconds:.1f} s")


@click.command("import-nba")
@click.argument("directory", type=click.Path(file_okay=False, path_type=str))
@click.option("--allow-shrink", is_flag=True,
              help="Replace a season even when a table would lose more than 5% of its rows.")
@click.option("--dedupe", is_flag=True,
              help="Keep the last copy of rows that repeat a raw table's key (default: refuse the import).")
@click.option("--json", "as_json", is_flag=True, help="Print a stable JSON object.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.pass_obj
def import_nba_command(obj: CliContext, directory: str, allow_shrink: bool, dedupe: bool, as_json: bool,
                       quiet: bool) -> None:
    """Import player_logs/, playoff_player_logs/ and prop_lines/ CSVs from DIRECTORY.

    Every file is validated before the warehouse is opened: a bad file is exit 2 and changes nothing.
    """
    from pipelines.nba.importer import read_nba, stderr_progress, write_nba

    progress = None if quiet else stderr_progress
    data = read_nba(directory, progress, dedupe=dedupe)
    summary = write_nba(obj.warehouse(create=True), data, allow_shrink=allow_shrink, progress=progress)
    if as_json:
        emit_json({"command": "import-nba", **summary.to_dict()})
        return
    console = Console()
    console.print(rows_table(f"imported {summary.files} files from {directory}", summary.rows,
                             summary.rows_per_season))
    for line in summary.shrunk:
        console.print(f"shrunk (--allow-shrink): {line}")
    for table, n in summary.deduplicated.items():
        console.print(f"--dedupe: {n:,} repeated row(s) of {table} dropped (the last copy of each key kept)")
    if summary.skipped:
        skipped = Table(title=f"{summary.skipped_total:,} rows skipped")
        skipped.add_column("file")
        skipped.add_column("reason")
        skipped.add_column("rows", justify="right")
        for file, reasons in summary.skipped.items():
            for reason, n in reasons.items():
                skipped.add_row(file, reason, f"{n:,}")
        console.print(skipped)
        console.print("skipped by reason: " + ", ".join(f"{r} {n:,}" for r, n in summary.skipped_by_reason.items()))
    else:
        console.print("no rows skipped")
    console.print(f"done in {summary.seconds:.1f} s")
