"""`backfill report RUN_ID... [--since DATE] [--json] [--html FILE] [--markdown FILE]`: the execution log.

Reports, never judges: exit 0 whenever the log was produced, whatever the runs' outcome;
only `--validate` (the sign-off) exits 1 when the validation it runs fails. 2 for an unknown
run, a bad date or an unwritable file (nothing written), 3 when Redis or the warehouse cannot
be reached.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from backfill.cli.context import CliContext
from backfill.errors import BadInput, ProblemsFound
from backfill.spec import PipelineSpec
from backfill.state.base import StateStore


def spec_of_run(obj: CliContext, store: StateStore, run_id: str) -> PipelineSpec:
    """The spec of the pipeline a run was enqueued with (its record names the folder), so commands
    about a run work from any working directory; the configured default when Redis has no record."""
    record = store.get_run(run_id)
    return obj.spec(record.pipeline if record is not None and record.pipeline else None)


def pipeline_flag_of(obj: CliContext, store: StateStore, run_id: str) -> str | None:
    """`--pipeline DIR` for the commands a report suggests, when the run's pipeline is not the one
    a bare command would load from this working directory (pasted elsewhere, a bare `backfill
    gaps` would say "no pipeline spec at pipelines/nba" or read another pipeline)."""
    record = store.get_run(run_id)
    if record is None or not record.pipeline:
        return None
    default = Path(obj.settings.pipeline)
    if (default / "pipeline.yaml").exists() and default.resolve() == Path(record.pipeline).resolve():
        return None
    return record.pipeline


def _writable(path: Path | None, flag: str) -> None:
    if path is not None and not path.parent.is_dir():
        raise BadInput(f"{flag} {path}: the directory {path.parent} does not exist")


@click.command("report")
@click.argument("run_ids", nargs=-1)
@click.option("--since", default=None, help="Every run created on or after this date (YYYY-MM-DD, UTC).")
@click.option("--pipeline", default=None,
              help="Pipeline directory when a run's own is not found (default: pipelines/nba).")
@click.option("--json", "as_json", is_flag=True, help="Print the log as JSON (shape in docs/cli.md).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a self-contained HTML report with charts to FILE.")
@click.option("--validate", "run_validate", is_flag=True,
              help="Run `backfill validate` over the runs' selection first and include (and record) the verdict; "
                   "exit 1 when it fails.")
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the Markdown log to FILE.")
@click.pass_obj
def report(obj: CliContext, run_ids: tuple[str, ...], since: str | None, pipeline: str | None, as_json: bool,
           html_file: Path | None, markdown_file: Path | None, run_validate: bool) -> None:
    """The execution log of a run (the latest by default), or of a campaign (several runs, or every run since a date).

    Request and plan, timeline per wave and season, tasks per status, retries and re-sends,
    throttle changes, failures by category, trigger pauses, validation, and the commands that
    fill what is missing.
    """
    from backfill.cli.run import Session
    from backfill.report import collect_campaign, render_html, render_markdown, runs_since

    day: dt.date | None = None
    if since is not None:
        try:
            day = dt.date.fromisoformat(since)
        except ValueError:
            raise BadInput(f"--since {since!r} is not a date (YYYY-MM-DD)") from None
    _writable(html_file, "--html")
    _writable(markdown_file, "--markdown")
    # The warehouse first: a wrong path is "no warehouse at PATH" before anything else starts.
    # --validate records its verdict: that write must reach the file itself, not a snapshot.
    warehouse, close = obj.reader(read_only=not run_validate, snapshot=not run_validate)
    try:
        session = Session(obj)
        ids = list(run_ids)
        if not ids and day is None:
            latest = session.store.list_runs()
            if not latest:
                raise BadInput("no runs in Redis yet: name a run id or pass --since DATE",
                               hint="`backfill runs` lists the runs")
            ids = [latest[0].run_id]
        spec = obj.spec(pipeline) if pipeline or not ids else spec_of_run(obj, session.store, ids[0])
        if day is not None:
            ids += [r for r in runs_since(session.store, warehouse, spec.run_history_table, day) if r not in ids]
            if not ids:
                raise BadInput(f"no run was created on or after {day}", hint="`backfill runs` lists the runs")
        if pipeline is None and ids:
            pipeline_flag = pipeline_flag_of(obj, session.store, ids[0])
        else:
            pipeline_flag = pipeline
        label = obj.settings.warehouse_url.split("://")[0]
        campaign = collect_campaign(ids, store=session.store, warehouse=warehouse, spec_for=obj.spec,
                                    default_spec=spec, settings=session.settings, warehouse_label=label,
                                    pipeline_flag=pipeline_flag, validate=run_validate)
    finally:
        if close:
            warehouse.close()
    text = render_markdown(campaign)
    if markdown_file is not None:
        markdown_file.write_text(text, encoding="utf-8")
    if html_file is not None:
        html_file.write_text(render_html(campaign), encoding="utf-8")
        click.echo(f"wrote {html_file}", err=True)
    if as_json:
        click.echo(json.dumps(campaign.to_json(), default=str))
    else:
        click.echo(text, nl=False)
    if run_validate:
        from backfill.report.collect import latest_validation

        verdicts = [latest_validation(campaign, sel) for sel in campaign.selections]
        failed = sorted({c["title"] for v in verdicts if v is not None for c in v.checks if not c["passed"]})
        if failed or any(v is None for v in verdicts):
            raise ProblemsFound(f"validation failed: {', '.join(failed) or 'no schedule to validate against'}",
                                hint="`backfill validate` with the flags the log prints shows each finding")
