"""`backfill throttle status|reset`: the shared warehouse throttle, for the on-call person.

The throttle halves its limit on quota errors and probes back up by itself; after a quota
storm that was fixed elsewhere (another job stopped, a quota raised), waiting for the probes
to climb from 1 back to 20 idles the run for minutes. `reset` puts the limit back to the
workers' configured maximum at once, keeping the slots held by running jobs.
Exit codes: 0 done, 2 nothing to reset (no worker has used the throttle yet), 3 Redis unreachable.
"""

from __future__ import annotations

import json

import click
import redis

from backfill.cli.context import CliContext
from backfill.errors import BadInput
from backfill.localredis import ensure_redis
from backfill.throttle import Throttle


def _throttle(ctx: CliContext) -> Throttle:
    client = redis.Redis.from_url(ensure_redis(ctx.settings), socket_connect_timeout=5, socket_timeout=10)
    return Throttle(client, "warehouse", initial_limit=ctx.settings.max_warehouse_jobs)


def _facts(t: Throttle) -> dict[str, object]:
    events = t.events()
    return {"limit": t.limit(), "max": t.max_limit(), "in_use": t.in_use(), "events": events[-10:]}


@click.group("throttle")
def throttle() -> None:
    """See or reset the shared limit on concurrent warehouse jobs."""


@throttle.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print limit, max, in_use and the last 10 changes as JSON.")
@click.pass_obj
def status(ctx: CliContext, as_json: bool) -> None:
    """The live limit, the configured maximum, the slots in use and the last changes."""
    facts = _facts(_throttle(ctx))
    if as_json:
        click.echo(json.dumps(facts))
        return
    click.echo(f"throttle limit {facts['limit']} of max {facts['max'] if facts['max'] is not None else '-'}; "
               f"{facts['in_use']} slot(s) in use")
    for e in facts["events"]:  # type: ignore[attr-defined]
        click.echo(f"  {e['time']} {e['reason']}: {e['previous']} -> {e['limit']}")


@throttle.command("reset")
@click.option("--json", "as_json", is_flag=True, help="Print the limit before and after as JSON.")
@click.pass_obj
def reset(ctx: CliContext, as_json: bool) -> None:
    """Put the limit back to the workers' configured maximum now (slots in use are kept)."""
    t = _throttle(ctx)
    before = t.limit()
    after = t.reset_limit()
    if after is None:
        raise BadInput("no worker has used the throttle in this Redis yet: nothing to reset",
                       hint="`backfill throttle status` shows it once a worker ran a task")
    if as_json:
        click.echo(json.dumps({"previous": before, "limit": after}))
    else:
        click.echo(f"throttle limit reset: {before} -> {after}")
