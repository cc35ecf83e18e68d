"""The engine end to end: real redis-server, real Celery worker subprocesses, a real DuckDB league."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from backfill.cli.selection import plan_from_warehouse
from backfill.executor import execute_task
from backfill.planner import PlanRequest
from backfill.spec import load_spec
from backfill.state import RedisStateStore, RunStatus, TaskStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba.sample import load_sample
from tests.integration.engine_harness import REPO, Worker, history, run_cli, table_checksums, wait_run

pytestmark = pytest.mark.integration
WEEK = ("--start", "2023-11-01", "--end", "2023-11-07", "--phases", "3,4")


@pytest.fixture(scope="session")
def league_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("league") / "league.duckdb"
    wh = DuckDBWarehouse(path)
    load_sample(wh, seasons=("2023-24",))
    wh.close()
    return path


@pytest.fixture
def env(tmp_path: Path, redis_server, league_template: Path) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    wh = tmp_path / "wh.duckdb"
    wh.write_bytes(league_template.read_bytes())
    workers: list[Worker] = []

    def worker(**kw: str) -> Worker:
        w = Worker(redis_server.url, wh, tmp_path / "home", **kw).start()
        workers.append(w)
        return w

    yield {"wh": wh, "home": tmp_path / "home", "redis": redis_server, "worker": worker,
           "store": RedisStateStore.from_url(redis_server.url)}
    for w in workers:
        w.stop()


def cli(env: dict, *args: str):  # type: ignore[no-untyped-def]
    return run_cli(env["redis"].url, env["wh"], env["home"], *args)


def enqueue(env: dict, *args: str) -> str:
    result = cli(env, "enqueue", *WEEK, *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


def test_week_run_matches_sequential_execution(env: dict, tmp_path: Path, league_template: Path) -> None:
    env["worker"]()
    run_id = enqueue(env)
    run = wait_run(env["store"], run_id, timeout=90)
    assert run.status is RunStatus.succeeded
    states = env["store"].states(run_id)
    assert set(states.values()) == {TaskStatus.succeeded}

    seq = tmp_path / "seq.duckdb"
    seq.write_bytes(league_template.read_bytes())
    spec = load_spec(REPO / "pipelines" / "nba")
    wh = DuckDBWarehouse(seq)
    request = PlanRequest(ranges=((dt.date(2023, 11, 1), dt.date(2023, 11, 7)),), phases=frozenset({3, 4}))
    plan, _ = plan_from_warehouse(spec, wh, request)
    assert {t.id for t in plan.tasks()} == set(states)
    for task in plan.tasks():
        assert execute_task(task, wh, spec).status in ("success", "partial")
    wh.close()
    tables = [spec.processors[n].target for n in spec.order if spec.processors[n].phase in (3, 4)]
    assert table_checksums(env["wh"], tables) == table_checksums(seq, tables)
    rows = history(env["wh"], run_id)
    assert Counter(r["status"] for r in rows) == Counter({"success": len(rows)})
    assert len({r["wave"] for r in rows}) == run.waves
