"""`backfill digest RUN_ID [--season S] [--json]`: the alert digest of a run as it stands.

Built by the same code as the digests the sinks receive, so for a settled season it matches
what was sent (same groups, same fingerprint); in `off` mode it is the only place to read it.
"""

from __future__ import annotations

import datetime as dt
import json

import click

from backfill.cli.context import CliContext
from backfill.errors import BadInput


@click.command("digest")
@click.argument("run_id")
@click.option("--season", default=None, help="Only this season of the run (e.g. 2023-24).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable digest (shape in docs/cli.md).")
@click.pass_obj
def digest(obj: CliContext, run_id: str, season: str | None, as_json: bool) -> None:
    """Failures and warnings of a run grouped per category and processor, with the affected game dates."""
    from backfill.alerts.message import Alert
    from backfill.alerts.notify import Notifier, alert_status
    from backfill.cli.run import Session

    session = Session(obj)
    if session.store.get_run(run_id) is None:
        raise BadInput(f"no run {run_id} in Redis", hint=f"if Redis lost it: `backfill resume {run_id}`")
    seasons = sorted({t.season for t in session.store.tasks(run_id).values()}, reverse=True)
    if season is not None and season not in seasons:
        raise BadInput(f"run {run_id} has no season {season}",
                       hint=f"its seasons: {', '.join(seasons) or 'none'}")
    found = Notifier(session.store, session.settings).digest(run_id, season)
    status = alert_status(session.store, run_id)
    if as_json:
        click.echo(json.dumps({**found.to_json(), "mode": status["mode"], "sent": status["sent"],
                               "failures": status["failures"]}))
        return
    click.echo(Alert("current", run_id, f"season:{season}" if season else "run", digest=found).text(), nl=False)
    click.echo(f"alerts: {status['mode']}; sent {len(status['sent'])}", nl=False)
    for s in status["sent"]:
        when = dt.datetime.fromtimestamp(s["at"]).strftime("%H:%M:%S")
        click.echo(f"\n  {when} {s['kind']} {s['scope']} -> {', '.join(s['sinks']) or 'no sink took it'}", nl=False)
    click.echo()
    for f in status["failures"]:
        click.echo(f"  sink {f['sink']} failed for {f['kind']} {f['scope']}: {f['error']}")
