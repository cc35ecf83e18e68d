"""Season gates with real Redis, workers and DuckDB: a season whose validation fails stops the run
before the next season starts; after the fix, `retry` and `resume` complete it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backfill.state import RedisStateStore, RunStatus, TaskStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba.sample import load_sample
from tests.integration.engine_harness import REPO, Worker, break_on_dates, run_cli, wait_run

pytestmark = pytest.mark.integration
TWO_OPENINGS = ("--range", "2022-10-01:2022-10-31", "--range", "2023-10-01:2023-10-31", "--phases", "3")


@pytest.fixture(scope="module")
def two_seasons(tmp_path_factory: pytest.TempPathFactory, league_template: Path) -> Path:
    """The shared 2023-24 sample league plus the 2022-23 season."""
    path = tmp_path_factory.mktemp("two") / "league.duckdb"
    path.write_bytes(league_template.read_bytes())
    wh = DuckDBWarehouse(path)
    load_sample(wh, seasons=("2022-23",))
    wh.close()
    return path


@pytest.fixture
def gated(tmp_path: Path, redis_server, two_seasons: Path) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    wh = tmp_path / "wh.duckdb"
    wh.write_bytes(two_seasons.read_bytes())
    worker = Worker(redis_server.url, wh, tmp_path / "home", 2).start()
    yield {"wh": wh, "home": tmp_path / "home", "redis": redis_server,
           "store": RedisStateStore.from_url(redis_server.url)}
    worker.stop()


def test_a_failed_season_validation_stops_the_run_before_the_next_season(gated: dict, tmp_path: Path) -> None:
    def cli(*args: str):  # type: ignore[no-untyped-def]
        return run_cli(gated["redis"].url, gated["wh"], gated["home"], *args)

    pipeline = tmp_path / "nba"
    shutil.copytree(REPO / "pipelines" / "nba", pipeline)
    sql = pipeline / "sql" / "team_defense_game_summary.sql"
    original = break_on_dates(sql, ["2023-10-27"], "injected validation failure")
    out = cli("enqueue", "--pipeline", str(pipeline), *TWO_OPENINGS, "--gate", "validate")
    assert out.exit_code == 0, out.output
    run_id = out.stdout.strip().splitlines()[-1]
    store: RedisStateStore = gated["store"]
    run = wait_run(store, run_id, timeout=90, until=lambda s: s.get_run(run_id).status is not RunStatus.running)
    assert run.status is RunStatus.paused and run.pause_kind == "gate", run
    tasks = store.tasks(run_id)
    started = store.started_at(run_id)
    assert started and all(tasks[t].season == "2023-24" for t in started), "nothing of 2022-23 started"
    assert all(s is TaskStatus.pending for t, s in store.states(run_id).items() if tasks[t].season == "2022-23")
    info = json.loads(cli("status", run_id, "--json").stdout)
    assert info["status"] == "paused" and info["paused"]["kind"] == "gate"
    assert "validation of season 2023-24 failed" in info["paused"]["reason"], info["paused"]
    assert "team_defense_game_summary" in info["paused"]["reason"], info["paused"]
    human = cli("status", run_id).stdout
    assert "validation of season 2023-24 failed" in " ".join(human.split())
    digest = json.loads(cli("digest", run_id, "--season", "2023-24", "--json").stdout)
    assert "validation" in json.dumps(digest), digest

    again = cli("resume", run_id)  # validated again, still failing: it stays paused and says why
    assert again.exit_code == 0 and "waits: validation of season 2023-24 failed" in again.output, again.output
    assert store.get_run(run_id).status is RunStatus.paused  # type: ignore[union-attr]

    sql.write_text(original)  # the fix
    retried = cli("retry", run_id)
    assert retried.exit_code == 0, retried.output
    resumed = cli("resume", run_id, "--wait")
    assert resumed.exit_code == 0, resumed.output
    run = wait_run(store, run_id, timeout=90)
    assert run.status is RunStatus.succeeded, run
    assert set(store.states(run_id).values()) == {TaskStatus.success}
    assert {tasks[t].season for t in store.started_at(run_id)} == {"2022-23", "2023-24"}
