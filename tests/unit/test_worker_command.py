"""`backfill worker` picks a pool the warehouse can live with, and the user's options win."""

from __future__ import annotations

from pathlib import Path

from backfill.cli.services import celery_worker_argv
from backfill.settings import Settings


def test_duckdb_warehouse_gets_the_threads_pool(tmp_path: Path) -> None:
    argv = celery_worker_argv(Settings(home=tmp_path, warehouse=""), [])
    assert argv[argv.index("--pool") + 1] == "threads"
    assert argv[argv.index("--concurrency") + 1] == "2"
    assert argv[1:6] == ["-m", "celery", "-A", "workers.app", "worker"]


def test_bigquery_warehouse_gets_prefork() -> None:
    argv = celery_worker_argv(Settings(warehouse="bigquery://my-project"), [])
    assert argv[argv.index("--pool") + 1] == "prefork"


def test_user_pool_and_concurrency_are_passed_through_untouched() -> None:
    s = Settings(warehouse="bigquery://p")
    for extra in (["-P", "solo", "-c", "8"], ["--pool=solo", "--concurrency=8"], ["-Psolo", "-c8"]):
        argv = celery_worker_argv(s, extra)
        assert "--pool" not in argv and "--concurrency" not in argv
        assert argv[-len(extra):] == extra
