"""`backfill worker` and `backfill down`: the local processes of the embedded default.

`worker` is a thin launcher for `celery -A workers.app worker` that picks the settings a user
would otherwise get wrong: a DuckDB warehouse is one file that one process must own, so its
workers use the threads pool; BigQuery workers use prefork. The Redis URL reaches Celery
through the environment, never the command line, so `ps` and Flower never show a password.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from backfill.cli.context import CliContext
from backfill.localredis import ensure_redis, pids_dir, stop_local
from backfill.settings import Settings

DEFAULT_CONCURRENCY = 2


def _has_option(args: Sequence[str], *names: str) -> bool:
    return any(a in names or any(a.startswith(f"{n}=") for n in names if n.startswith("--"))
               or any(a.startswith(n) and len(a) > len(n) for n in names if not n.startswith("--"))
               for a in args)


def pool_for(warehouse_url: str) -> str:
    """threads for an embedded DuckDB file (one process owns it), prefork elsewhere."""
    return "threads" if warehouse_url.startswith("duckdb") else "prefork"


def celery_worker_argv(settings: Settings, extra: Sequence[str]) -> list[str]:
    """The celery command line for `backfill worker EXTRA...` (user options win)."""
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker"]
    if not _has_option(extra, "--pool", "-P"):
        argv += ["--pool", pool_for(settings.warehouse_url)]
    if not _has_option(extra, "--concurrency", "-c"):
        argv += ["--concurrency", str(DEFAULT_CONCURRENCY)]
    if not _has_option(extra, "--loglevel", "-l"):
        argv += ["--loglevel", "INFO"]
    return argv + list(extra)


def worker_env(settings: Settings, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["BACKFILL_REDIS_URL"] = redis_url
    env["BACKFILL_WAREHOUSE"] = settings.warehouse_url
    env["BACKFILL_HOME"] = str(settings.home.resolve())
    return env


@click.command("worker", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def worker(ctx: CliContext, celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker (extra options go to `celery worker`).

    Defaults: --pool threads for a DuckDB warehouse, prefork otherwise; --concurrency 2.
    Starts the local Redis first when BACKFILL_REDIS_URL is not set.
    """
    settings = ctx.settings
    env = worker_env(settings, ensure_redis(settings))
    argv = celery_worker_argv(settings, celery_args)
    # exec keeps the pid, so the pid recorded here is the worker's own and `backfill down` stops it.
    pdir = pids_dir(settings)
    pdir.mkdir(parents=True, exist_ok=True)
    (pdir / f"worker-{os.getpid()}.pid").write_text(f"{os.getpid()}\n")
    click.echo(f"starting celery worker ({' '.join(argv[3:])}) on {settings.warehouse_url}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)


@click.command("down")
@click.pass_obj
def down(ctx: CliContext) -> None:
    """Stop the local redis-server and the workers the CLI started under the home directory."""
    stopped = stop_local(ctx.settings)
    if not stopped:
        click.echo(f"nothing was running under {ctx.settings.home}")
        return
    for what in stopped:
        click.echo(f"stopped {what}")
