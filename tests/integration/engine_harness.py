"""Real workers, a real DuckDB league and the real CLI for the engine's integration tests."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from backfill import engine
from backfill.cli import cli as backfill_cli
from backfill.runhistory import RunHistory
from backfill.state import RedisStateStore, RunRecord, RunStatus, TaskStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba.sample import load_sample

REPO = Path(__file__).resolve().parents[2]
WEEK = ("--start", "2023-11-01", "--end", "2023-11-07", "--phases", "3,4")
# From the season's start, so every upstream window of the first dates lies inside the run:
# 8 game dates (80 tasks at --batch 1, 4 waves), and 58 game dates (580 tasks).
OPENING = ("--start", "2023-10-01", "--end", "2023-10-31", "--phases", "3,4")
TEN_WEEKS = ("--start", "2023-10-01", "--end", "2023-12-20", "--phases", "3,4")


class Worker:
    """`celery -A workers.app worker --pool threads` as a subprocess pointed at the test Redis and file.

    Default settings (visibility timeout 2 h, lease 30 s, watchdog on) except a short retry
    backoff. `app="tests.support.faulty_app"` wraps the warehouse in injected faults.
    """

    count = 0

    def __init__(self, redis_url: str, warehouse: Path, home: Path, concurrency: int = 4,
                 app: str = "workers.app", **env: str) -> None:
        Worker.count += 1
        self.name = f"w{Worker.count}-{os.getpid()}"
        self.log = home / f"{self.name}.log"
        home.mkdir(parents=True, exist_ok=True)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
        self.env = dict(clean, BACKFILL_REDIS_URL=redis_url, BACKFILL_WAREHOUSE=f"duckdb:///{warehouse}",
                        BACKFILL_HOME=str(home), BACKFILL_RETRY_BACKOFF_SECONDS="0.2", PYTHONPATH=str(REPO))
        self.env.update(env)
        self.argv = [sys.executable, "-m", "celery", "-A", app, "worker", "--pool", "threads",
                     "-c", str(concurrency), "--loglevel", "INFO", "-n", f"{self.name}@%h",
                     "--without-mingle", "--without-gossip"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        self.proc = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.log.exists() and " ready." in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready: {self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def break_on_dates(sql: Path, days: list[str], message: str = "injected failure") -> str:
    """Make a processor's SQL raise on these dates only (evaluated per row, so no other date fails).

    Returns the original text so the test can restore it (the "fix") before `retry`.
    """
    original = sql.read_text()
    listed = ", ".join(f"DATE '{d}'" for d in days)
    broken = original.replace(
        "SELECT\n  d.game_date,",
        f"SELECT\n  CASE WHEN d.game_date IN ({listed}) THEN ERROR(CONCAT('{message} on ', "
        "CAST(d.game_date AS STRING))) ELSE d.game_date END AS game_date,", 1)
    assert broken != original, f"{sql} has no `SELECT d.game_date,` to break"
    sql.write_text(broken)
    return original


def league_copy(template: Path, dest: Path) -> Path:
    shutil.copyfile(template, dest)
    return dest


def run_cli(redis_url: str, warehouse: Path, home: Path, *args: str) -> Result:
    return CliRunner().invoke(backfill_cli, ["--redis-url", redis_url, "--warehouse", f"duckdb:///{warehouse}",
                                    "--home", str(home), *args], catch_exceptions=False)


def wait_run(store: RedisStateStore, run_id: str, timeout: float = 60, until: Any = None) -> RunRecord:
    """Poll until the run is no longer running (or `until(store)` holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = store.get_run(run_id)
        if until is not None:
            if until(store):
                assert run is not None
                return run
        elif run is not None and run.status is not RunStatus.running:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {store.get_run(run_id)} after {timeout}s: "
                         f"{ {k: v.value for k, v in store.states(run_id).items()} }")


def queued_task_with_dependents(store: RedisStateStore, run_id: str) -> tuple[str, str]:
    """A task still waiting in the broker queue that has dependents; its Celery id."""
    tasks = store.tasks(run_id)
    states = store.states(run_id)
    flight = store.inflight(run_id)
    candidates = sorted((t for t in flight if states[t] is TaskStatus.pending and engine.dependents(tasks, [t])),
                        key=lambda t: -flight[t])
    task_id = candidates[0]
    celery_id = next(c for c in store.queued(run_id) if c.split("|")[1] == task_id)
    return task_id, celery_id


def settled_after_revoke(store: RedisStateStore, run_id: str, task_id: str,
                         revoked_at: float) -> tuple[RunRecord, set[str]]:
    """The run finishes by itself within 60 s of the revoke of its queued `task_id` (at `revoked_at`, a
    monotonic time): that task revoked, exactly its dependents blocked, every other task succeeded.
    Returns the finished run and the blocked tasks."""
    run = wait_run(store, run_id, timeout=60)
    assert time.monotonic() - revoked_at < 60
    states = store.states(run_id)
    blocked = engine.dependents(store.tasks(run_id), [task_id])
    assert states[task_id] is TaskStatus.revoked, (task_id, states[task_id])
    assert {t for t, s in states.items() if s is TaskStatus.blocked} == blocked, (states, blocked)
    assert all(s is TaskStatus.success for t, s in states.items() if t not in blocked | {task_id}), states
    return run, blocked


def table_checksums(path: Path, tables: list[str]) -> dict[str, tuple[int, str]]:
    """Row count and a digest of the sorted rows of each table (order-independent)."""
    wh = DuckDBWarehouse(path, hold=False)
    out: dict[str, tuple[int, str]] = {}
    for table in tables:
        rows = sorted(repr(sorted(r.items())) for r in wh.query(f"SELECT * FROM {table}"))
        out[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16])
    return out


def history(path: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    """Run-history rows in the tool's canonical names (`RunHistory.view_sql`: status = our outcome,
    finished_at = processed_at, attempt = retry_attempt); the raw table has the users' names."""
    wh = DuckDBWarehouse(path, hold=False)
    where = f" WHERE run_id = '{run_id}'" if run_id else ""
    view = RunHistory(wh, "nba_reference.processor_run_history").view_sql()
    return wh.query(f"SELECT * FROM ({view}) AS h{where}")


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

    def worker(concurrency: int = 4, app: str = "workers.app", **kw: str) -> Worker:
        w = Worker(redis_server.url, wh, tmp_path / "home", concurrency, app, **kw).start()
        workers.append(w)
        return w

    yield {"wh": wh, "home": tmp_path / "home", "redis": redis_server, "worker": worker,
           "store": RedisStateStore.from_url(redis_server.url)}
    for w in workers:
        w.stop()


def cli(env: dict, *args: str):  # type: ignore[no-untyped-def]
    return run_cli(env["redis"].url, env["wh"], env["home"], *args)


def enqueue(env: dict, *args: str, selection: tuple[str, ...] = WEEK) -> str:
    result = cli(env, "enqueue", *selection, *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


WRITTEN_TABLES = ("nba_analytics.player_game_summary", "nba_analytics.team_offense_game_summary",
                  "nba_precompute.player_daily_cache", "nba_precompute.ml_feature_store")


def assert_written_once(wh: Path, run_id: str, states: dict[str, TaskStatus]) -> None:
    """No duplicate row in a sample of target tables, and one run-history row per (task, date)."""
    db = DuckDBWarehouse(wh, hold=False)
    for table in WRITTEN_TABLES:
        rows = [tuple(sorted(r.items())) for r in db.query(f"SELECT * FROM {table}")]
        assert rows and len(rows) == len(set(rows)), table
    keys = Counter((r["task_id"], r["data_date"]) for r in history(wh, run_id))
    assert set(keys.values()) == {1}, [k for k, n in keys.items() if n > 1][:5]
    assert {t for t, _ in keys} == set(states)
