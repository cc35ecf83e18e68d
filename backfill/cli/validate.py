"""`backfill validate`: is the backfill complete? The users' four checks and the acceptance criteria.

Exit codes: 0 every criterion holds, 1 something does not (the report says what), 2 bad input
(dates, phases, unknown processor or season, empty schedule, unwritable --markdown file),
3 the warehouse cannot be opened.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from backfill.calendar import Calendar
from backfill.cli.context import CliContext
from backfill.cli.selection import _csv, parse_phases, parse_ranges, parse_season_types, reading_options
from backfill.errors import BadInput, PlanError, ProblemsFound


@click.command("validate")
@reading_options
@click.option("--spot-checks", type=click.IntRange(0, 1000), default=None,
              help="Partitions to recompute and compare (default: the pipeline's acceptance.spot_checks).")
@click.option("--seed", type=int, default=None, help="Seed of the spot-check sample (printed; reuse it to repeat).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (shape in docs/cli.md).")
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report as Markdown to FILE (the sign-off record).")
@click.pass_obj
def validate(obj: CliContext, pipeline: str | None, start: str | None, end: str | None, ranges: tuple[str, ...],
             phases: str | None, processors: str | None, seasons: str | None, season_types: str | None,
             spot_checks: int | None,
             seed: int | None, as_json: bool, markdown_file: Path | None) -> None:
    """Prove a backfill complete against the schedule; exit 0 only when every acceptance criterion holds.

    Completeness per processor and season, row counts per date, success rate from the run history,
    NULLs, value ranges, coverage and spot checks, and stale partitions. Off-days, the All-Star
    break and the days between the regular season and the playoffs are never gaps.
    """
    from backfill.validate.render import markdown, render_report
    from backfill.validate.suite import validate as run_validation

    spec = obj.spec(pipeline)
    parsed = parse_ranges(start, end, ranges)
    phase_set = parse_phases(phases)
    names = spec.select(set(phase_set) if phase_set else None, set(_csv(processors, "--processors")) or None)
    season_list = _csv(seasons, "--seasons")
    types = parse_season_types(season_types)
    if markdown_file is not None and not markdown_file.parent.is_dir():
        raise BadInput(f"--markdown {markdown_file}: the directory {markdown_file.parent} does not exist")
    warehouse, close = obj.reader(read_only=False)
    try:
        calendar = Calendar.from_warehouse(warehouse, spec.schedule_table)
        if not calendar.seasons:
            raise BadInput(f"the schedule table {spec.schedule_table} is empty",
                           hint="load raw data first: `backfill data sample` or `backfill data import-nba DIR`")
        unknown = sorted(set(season_list) - set(calendar.seasons))
        if unknown:
            raise PlanError(f"unknown season(s) {', '.join(unknown)}: the schedule has {', '.join(calendar.seasons)}")
        report = run_validation(spec, warehouse, calendar, names, parsed, season_list or None, seed=seed,
                                spot_checks=spot_checks, pipeline_flag=pipeline,
                                season_types=sorted(types) if types else None)
    finally:
        if close:
            warehouse.close()
    if markdown_file is not None:
        markdown_file.write_text(markdown(report), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(report.to_json(), default=str))
    else:
        render_report(report, Console())
    if not report.passed:
        failed = [c.title for c in report.checks if not c.passed]
        n = sum(len(c.findings) for c in report.checks)
        raise ProblemsFound(f"validation failed: {n} finding(s) in {', '.join(failed)}",
                            hint=f"spot-check seed {report.seed}")
