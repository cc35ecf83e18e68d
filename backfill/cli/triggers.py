"""`backfill triggers status|check|serve|pause|resume`: see, ask about and override trigger pauses.

Runs pause and release their triggers themselves; these commands are for people: to see who
holds a pause and until when, to pause by hand before some manual work (under a lease that
expires, like a run's), and to force everything back on when a holder is known to be gone.

`pause` takes only the names the pipeline knows (`known_triggers`), checked before Redis is
touched: a typo, or an unquoted `phase3->phase4` that bash turned into `phase3-`, would
otherwise be a pause nobody ever asks about.

`check` and `serve` are for the live pipeline: the same question as
`backfill.triggers.downstream_enabled`, as an exit code or an HTTP status, read-only, and
never starting a local Redis (an orchestrator asking must not create the state it asks about).
"""

from __future__ import annotations

import getpass
import json
import socket
from typing import Literal

import click
import redis
from rich.console import Console
from rich.table import Table

from backfill.cli.context import CliContext
from backfill.errors import BadInput
from backfill.localredis import ensure_redis, local_url
from backfill.settings import redact_url
from backfill.triggers import TriggerAnswer, Triggers, ask, check_trigger_name, known_triggers


def cli_holder() -> str:
    """The holder name of pauses made at the CLI: one per user and machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _triggers(ctx: CliContext) -> Triggers:
    return Triggers(redis.Redis.from_url(ensure_redis(ctx.settings), socket_connect_timeout=5, socket_timeout=10))


def _known(ctx: CliContext, pipeline: str | None) -> tuple[list[str], str]:
    # From any directory (a cron job's, a Cloud Function's host, an on-call laptop), the default
    # pipeline is found as `demo` and `data` find it: the directory, else the installed package.
    spec = ctx.spec(str(ctx.pipeline_dir(pipeline)))
    return known_triggers(spec), spec.name


_PIPELINE = click.option("--pipeline", default=None,
                         help="Pipeline directory whose triggers NAME must be one of (default BACKFILL_PIPELINE, "
                              "else pipelines/nba: that directory, or the installed package).")


@click.group("triggers")
def triggers() -> None:
    """Pause or resume downstream triggers ('phase3->phase4', ...) and show who holds them.

    Quote trigger names: unquoted, bash reads '>' as a redirect.
    """


@triggers.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(ctx: CliContext, as_json: bool) -> None:
    """Every trigger ever paused: enabled or paused, by whom, why, and until when.

    Exit 0 when every trigger is enabled, 1 when any is paused (so a script can branch on it),
    3 when Redis does not answer.
    """
    rows = _triggers(ctx).status()
    paused = any(row["paused"] for row in rows)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        _exit_if(paused)
        return
    if not rows:
        click.echo("no trigger has been paused: all downstream triggers are enabled")
        return
    table = Table(show_edge=False)
    for col in ("trigger", "state", "holder", "reason", "since", "until"):
        table.add_column(col)
    for row in rows:
        leases = row["leases"] or [{}]
        for i, lease in enumerate(leases):
            state = ("[red]paused[/red]" if row["paused"] else "[green]enabled[/green]") if i == 0 else ""
            table.add_row(row["name"] if i == 0 else "", state, lease.get("holder") or "",
                          lease.get("reason") or "", lease.get("since") or "", lease.get("until") or "")
    Console().print(table)
    _exit_if(paused)


def _exit_if(paused: bool) -> None:
    if paused:
        raise SystemExit(1)


def _reader(ctx: CliContext) -> tuple[redis.Redis | None, str]:
    """A client for the configured Redis, or the local one recorded under home; never starts one."""
    url = ctx.settings.redis_url_value or local_url(ctx.settings) or ""
    if not url:
        return None, ""
    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5), redact_url(url)


_UNREACHABLE = click.option(
    "--on-unreachable", type=click.Choice(["closed", "open"]), default="closed", show_default=True,
    help="No answer from Redis: closed = treat as paused (exit 3 / HTTP 503); open = may fire (exit 0 / HTTP 200) "
         "with a warning, like downstream_enabled's default.")


@triggers.command("check")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable answer (shape in docs/cli.md).")
@_UNREACHABLE
@_PIPELINE
@click.pass_obj
def check(ctx: CliContext, name: str, as_json: bool, on_unreachable: str, pipeline: str | None) -> None:
    """May the live pipeline fire NAME (quoted, like 'phase3->phase4') now?

    Exit 0 it may; 1 a backfill holds a pause (the holders, reasons and expiry are printed);
    3 Redis does not answer (or none is configured) under --on-unreachable closed. Read-only.
    """
    known, pipeline_name = _known(ctx, pipeline)
    check_trigger_name(name, known, pipeline_name)
    client, where = _reader(ctx)
    try:
        answer = ask(name, client, on_unreachable="open" if on_unreachable == "open" else "closed", where=where)
    finally:
        if client is not None:
            client.close()
    _report(answer, as_json)


def _report(answer: TriggerAnswer, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(answer.to_json(), indent=2))
    elif answer.reachable:
        click.echo(answer.one_line())
    else:
        click.echo(("warning: " if answer.may_fire else "error: ") + answer.one_line(), err=True)
    if answer.exit_code:
        raise SystemExit(answer.exit_code)


@triggers.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 behind a load balancer or in a container).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@_UNREACHABLE
@_PIPELINE
@click.pass_obj
def serve(ctx: CliContext, host: str, port: int, on_unreachable: str, pipeline: str | None) -> None:
    """Answer GET /triggers/<name> over HTTP: 200 may fire, 423 paused, 503 Redis unreachable.

    Requires BACKFILL_TRIGGERS_TOKEN (callers send `Authorization: Bearer <token>`); the token is
    never printed. Read-only: it never pauses, releases or prunes anything.
    """
    from backfill.trigger_server import TriggerServer

    token = ctx.settings.triggers_token.get_secret_value()
    if not token:
        raise BadInput("BACKFILL_TRIGGERS_TOKEN is not set",
                       hint="set it to a long random secret, e.g. `export BACKFILL_TRIGGERS_TOKEN=$(openssl rand "
                            "-hex 24)`, and give the same value to the callers")
    known, _ = _known(ctx, pipeline)
    policy: Literal["open", "closed"] = "open" if on_unreachable == "open" else "closed"

    def asker(name: str) -> TriggerAnswer:
        client, where = _reader(ctx)
        try:
            return ask(name, client, on_unreachable=policy, where=where)
        finally:
            if client is not None:
                client.close()

    try:
        server = TriggerServer((host, port), asker, known, token)
    except OSError as exc:
        raise BadInput(f"cannot listen on {host}:{port} ({exc.strerror})", hint="choose another --port") from None
    bound_host, bound_port = server.server_address[:2]
    click.echo(f"serving trigger answers on http://{bound_host!s}:{bound_port} for {', '.join(known)} "
               f"(--on-unreachable {policy}); Ctrl-C stops", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@triggers.command("pause")
@click.argument("name")
@click.option("--ttl", type=click.FloatRange(min=1), default=3600, show_default=True,
              help="Seconds until the pause ends by itself unless paused again.")
@click.option("--reason", default="", help="Shown in status.")
@_PIPELINE
@click.pass_obj
def pause(ctx: CliContext, name: str, ttl: float, reason: str, pipeline: str | None) -> None:
    """Pause trigger NAME, quoted like 'phase3->phase4', under your own lease.

    NAME must be a trigger of the pipeline (exit 2 otherwise, naming the known ones).
    """
    known, pipeline_name = _known(ctx, pipeline)
    check_trigger_name(name, known, pipeline_name)
    holder = cli_holder()
    t = _triggers(ctx)
    t.pause(name, holder, ttl, reason)
    until = next((r["until"] for r in t.status() if r["name"] == name), None)
    click.echo(f"paused {name} as {holder} until {until} (renew by pausing again)")


@triggers.command("resume")
@click.argument("name")
@click.option("--all", "force_all", is_flag=True, help="Release every holder's pause, not only yours.")
@_PIPELINE
@click.pass_obj
def resume(ctx: CliContext, name: str, force_all: bool, pipeline: str | None) -> None:
    """Release your pause on NAME, quoted like 'phase3->phase4'; --all: every pause on it.

    NAME must be a trigger of the pipeline or one `status` lists (so a pause taken under a
    wrong name before names were checked can still be released); exit 2 otherwise.
    """
    known, pipeline_name = _known(ctx, pipeline)
    t = _triggers(ctx)
    if name not in known:
        check_trigger_name(name, sorted({*known, *t.names()}), pipeline_name)
    if force_all:
        released = t.release_all(name)
        if released:
            click.echo(f"warning: force-released pauses held by {', '.join(released)}; a run still "
                       "going now writes with this trigger enabled", err=True)
    else:
        holder = cli_holder()
        if not t.release(name, holder):
            others = [lease["holder"] for lease in t.leases(name)]
            extra = f"; still paused by {', '.join(others)} (use --all to override)" if others else ""
            click.echo(f"{holder} held no pause on {name}{extra}")
            return
    state = "enabled" if t.is_enabled(name) else "still paused by " + ", ".join(h["holder"] for h in t.leases(name))
    click.echo(f"{name}: {state}")
