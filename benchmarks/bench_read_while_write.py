"""CLI latency on a DuckDB warehouse while a run writes it, next to the same commands idle.

    .venv/bin/python benchmarks/bench_read_while_write.py [--seasons 2020-21,...,2024-25] [--threads 4]

A real redis-server, one Celery worker (threads pool) and the sample league of six seasons.
Each command runs as a user types it (a fresh `backfill` process): first idle, then during a
run of Phases 3 and 4 over the last five seasons, once the worker writes. `enqueue` is timed to
the moment its run id is printed (another range: one week of the first season, Phase 3).
Printed side by side per command: idle, during the run, and the ratio (the median of --repeat
runs each), with the machine's load. Before the CLI read a snapshot of a held file, `plan` took
16 s and `validate` 42 s during a run (2 s idle), and `enqueue` blocked 8-19 s before its id.

Measured on a 2-core machine shared with a CI run and other jobs (load is the 1-min average,
mean of before and after measuring; seconds, median of 3):

    command                  before: idle (load 4.4)  during (5.3)   after: idle (load 2.3)  during (3.4)
    plan                             1.81             4.86                  0.74             1.87
    gaps                             1.39             4.57                  0.73             1.73
    status                           0.75             4.38                  0.59             1.92
    validate --spot-checks 0         2.41             5.59                  0.94             2.35
    enqueue, until its id            2.37             6.71                  1.17             1.95

"Before" is commit acf1b4b (every command module imported by every
command, pure-Python YAML parsed twice, a DuckDB open per query, the processor SQL parsed three
times, no hiredis, a snapshot refused whenever the WAL grew during the copy). The load differs
between the two runs and moves during each, so the ratios within a run say more than the
absolute seconds across runs. Not every run after meets the targets: one (at load 4.8, before a
refused copy was retried at once) gave during the run plan 3.16, status 2.11, validate 4.85 and
enqueue 7.50 s (before a refused copy was retried at once). Two runs on 2026-12-06 (final code),
during the run at load 3.2 and 4.0: plan 1.20/1.30, gaps 1.10/1.16, status 1.47/1.33, validate
1.57/1.39, enqueue until its id 1.41/1.42 s (idle 0.47-0.84 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backfill.outcome import TaskOutcome  # noqa: E402
from backfill.state.redis import RedisStateStore  # noqa: E402
from backfill.warehouse.duckdb import DuckDBWarehouse  # noqa: E402
from benchmarks.services import backfill_env, celery_worker, redis_server  # noqa: E402
from pipelines.nba.sample import load_sample  # noqa: E402

BACKFILL = str(Path(sys.executable).parent / "backfill")
WEEK = ["--start", "2023-11-01", "--end", "2023-11-07", "--phases", "3,4"]


def timed(env: dict[str, str], *args: str, until_line: bool = False) -> float:
    """Seconds until the command ended (or, with `until_line`, printed its first stdout line)."""
    began = time.monotonic()
    proc = subprocess.Popen([BACKFILL, *args], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None
    if until_line:
        line = proc.stdout.readline()
        took = time.monotonic() - began
        assert line.startswith("bf-"), line
        proc.communicate(timeout=300)
        return took
    proc.communicate(timeout=300)
    return time.monotonic() - began


def wait_for_writes(store: RedisStateStore, run_id: str, tasks: int = 20, timeout: float = 600) -> None:
    """Until the run has written `tasks` tasks (task states `success`/`partial`), so the worker is
    writing while we measure; refused if the run ends (`succeeded`/`partial`/`failed`/`cancelled`)
    first or nothing reaches that count in `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while sum(1 for s in store.states(run_id).values() if TaskOutcome.parse(s.value, TaskOutcome.failed).wrote) < tasks:
        meta = store.get_run(run_id)
        if meta is not None and not meta.status.active:
            raise SystemExit(f"run {run_id} ended ({meta.status}) before {tasks} tasks wrote")
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id}: fewer than {tasks} tasks wrote in {timeout:.0f} s")
        time.sleep(0.5)


def measure(env: dict[str, str], run_id: str | None, repeat: int, first_week: int) -> dict[str, float]:
    """The median of `repeat` runs of each command; `enqueue` takes another week each time (the
    same one would be refused while its earlier run still writes it)."""
    runs: dict[str, list[float]] = {}
    for i in range(repeat):
        runs.setdefault("plan", []).append(timed(env, "plan", *WEEK))
        runs.setdefault("gaps", []).append(timed(env, "gaps", *WEEK))
        runs.setdefault("status", []).append(timed(env, "status", *([run_id] if run_id else [])))
        runs.setdefault("validate", []).append(timed(env, "validate", *WEEK, "--spot-checks", "0"))
        start = dt.date(2020, 1, 8) + dt.timedelta(days=7 * (first_week + i))
        runs.setdefault("enqueue (id printed)", []).append(timed(
            env, "enqueue", "--start", start.isoformat(), "--end", (start + dt.timedelta(days=6)).isoformat(),
            "--phases", "3", "--force", until_line=True))
    return {name: statistics.median(seconds) for name, seconds in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seasons", default="2019-20,2020-21,2021-22,2022-23,2023-24,2024-25",
                        help="the first is where `enqueue` is timed; the run covers the others")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; the median is shown")
    args = parser.parse_args()
    seasons = tuple(s for s in args.seasons.split(",") if s)
    with tempfile.TemporaryDirectory(prefix="bench-rww-") as tmp:
        work = Path(tmp)
        wh = work / "wh.duckdb"
        began = time.monotonic()
        db = DuckDBWarehouse(wh)
        load_sample(db, seasons=seasons)
        db.close()
        print(f"sample league of {len(seasons)} seasons loaded in {time.monotonic() - began:.0f} s", flush=True)
        with redis_server(work) as url:
            env = backfill_env(url, wh, work / "home", pipeline=str(REPO / "pipelines" / "nba"))
            with celery_worker(env, work / "home", "bench", args.threads):
                idle_load = os.getloadavg()[0]
                idle = measure(env, None, args.repeat, 0)
                idle_load = (idle_load + os.getloadavg()[0]) / 2
                first, last = f"{seasons[1][:4]}-10-01", f"20{seasons[-1][5:]}-06-30"
                run = subprocess.run([BACKFILL, "enqueue", "--start", first, "--end", last, "--phases", "3,4",
                                      "--batch", "1"], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
                run_id = run.stdout.strip().splitlines()[-1]
                store = RedisStateStore.from_url(url)
                wait_for_writes(store, run_id)
                busy_load = os.getloadavg()[0]
                busy = measure(env, run_id, args.repeat, args.repeat)
                busy_load = (busy_load + os.getloadavg()[0]) / 2
                settled = sum(1 for s in store.states(run_id).values() if s.finished)
                print(f"during run {run_id} ({len(store.states(run_id))} tasks, {settled} settled when done "
                      f"measuring), {args.threads} worker threads")
                print(f"load (1-min average, mean of before and after measuring): idle {idle_load:.1f}, "
                      f"during {busy_load:.1f}; median of {args.repeat}")
                print(f"{'command':24} {'idle s':>8} {'during s':>9} {'ratio':>6}")
                for name, seconds in idle.items():
                    print(f"{name:24} {seconds:8.2f} {busy[name]:9.2f} {busy[name] / seconds:6.2f}")
                subprocess.run([BACKFILL, "cancel", run_id], env=env, cwd=REPO, capture_output=True, timeout=300)


if __name__ == "__main__":
    main()
