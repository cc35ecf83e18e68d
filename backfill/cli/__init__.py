"""The `backfill` command line. Each command group lives in its own module of this package."""

from __future__ import annotations

import os
import sys
import traceback

import click

from backfill.cli.commands import command_names, load_command
from backfill.cli.context import CliContext
from backfill.errors import BackfillError, CannotConnect
from backfill.settings import redact_url


def _outage_errors() -> tuple[type[BaseException], ...]:
    """Redis's outage errors, once a command has imported the Redis client (none that never
    reached Redis can raise them: `plan`, `validate`, `--help` never import it)."""
    if "backfill.state.redis" not in sys.modules:
        return ()
    from backfill.state.redis import OUTAGE_ERRORS

    return OUTAGE_ERRORS


def redis_unavailable(exc: Exception, url: str) -> CannotConnect:
    """Redis stopped answering, or turned read-only (a failover), after the command had reached it."""
    import redis

    where = f"Redis at {redact_url(url)}" if url else "the local Redis"
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return CannotConnect(f"{where} is read-only, a replica (a failover under way?)",
                             hint="run the command again once it has a writable primary; BACKFILL_REDIS_URL must "
                                  "name the primary, not a replica")
    return CannotConnect(f"{where} stopped answering ({type(exc).__name__}: {exc})",
                         hint="run the command again once it answers")


class _Group(click.Group):
    """Turns every BackfillError, and a Redis that stops answering or turns read-only mid-command,
    into one line on stderr and its documented exit code.

    Each command's module is imported only when that command runs (see `commands`): a command
    pays for its own imports, not for every other command's."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return command_names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        try:
            try:
                return super().invoke(ctx)
            except Exception as exc:
                if not isinstance(exc, _outage_errors()):
                    raise
                raise redis_unavailable(exc, ctx.obj.settings.redis_url_value if ctx.obj else "") from exc
        except BackfillError as exc:
            if ctx.obj is not None and getattr(ctx.obj, "debug", False):
                traceback.print_exc()
            click.echo(f"error: {exc.one_line()}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--home", envvar="BACKFILL_HOME", default=None, help="Local state directory (default .backfill).")
@click.option("--warehouse", envvar="BACKFILL_WAREHOUSE", default=None,
              help="duckdb:///path.duckdb or bigquery://project (default: .backfill/warehouse.duckdb).")
@click.option("--redis-url", envvar="BACKFILL_REDIS_URL", default=None, help="Redis for run state and broker.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="backfill")
@click.pass_context
def cli(ctx: click.Context, home: str | None, warehouse: str | None, redis_url: str | None, debug: bool) -> None:
    """Dependency-safe, resumable backfills of date-partitioned warehouse pipelines.

    Exit codes: 0 ok, 1 problems found, 2 bad input, 3 cannot connect.
    """
    ctx.obj = CliContext.build(home=home, warehouse=warehouse, redis_url=redis_url, debug=debug)


def main() -> None:
    """Entry point: click's own usage errors also become one line and exit 2."""
    from backfill.cli.pipes import install

    install()  # `backfill gaps ... | head`: a closed reader ends the output, not the command
    if not sys.stdout.isatty():
        # Piped or logged output: rich would otherwise squeeze tables into 80 columns and cut numbers.
        os.environ.setdefault("COLUMNS", "160")
    try:
        code = cli.main(prog_name="backfill", standalone_mode=False)
    except click.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{where}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
