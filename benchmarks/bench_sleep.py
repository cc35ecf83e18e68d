"""The simulated BigQuery-like workload through the real engine, next to the simulation of it.

    .venv/bin/python benchmarks/bench_sleep.py [--slots 4,16,64] [--seconds 30] [--data DIR]

`benchmarks/simulate.py` compares scheduling policies on paper; this drives the real thing with
the same workload: `benchmarks/sleep_pipeline` has the NBA pipeline's processors, windows and
estimates, but each processor sleeps its simulated cost (`simulate.bigquery_like_costs`: a
one-date job of the spec's estimate x U(0.75, 1.25), two thirds fixed per job), scaled so the
lower bound of a run is `--seconds`, and writes one row per date. For C slots the plan is the
one the planner makes for BigQuery at concurrency C (`--batch auto`, recent-first); a real
redis-server and one Celery worker with C threads run it through `backfill.engine` (dependency
dispatch, leases, the defensive check before each task and the outcome checks after it, the
run history) on a DuckDB file holding the real schedule. Reported per C: the engine's makespan
vs the lower bound max(critical path, work / C) and vs the simulated dependency dispatch, and
when the most recent season was complete, as a fraction of each makespan.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backfill import engine  # noqa: E402
from backfill.calendar import Calendar  # noqa: E402
from backfill.planner import Plan, PlanRequest, build_plan  # noqa: E402
from backfill.planner.batching import BIGQUERY  # noqa: E402
from backfill.settings import Settings  # noqa: E402
from backfill.spec import PipelineSpec, load_spec  # noqa: E402
from backfill.state import RunRecord  # noqa: E402
from backfill.state.redis import RedisStateStore  # noqa: E402
from backfill.warehouse.duckdb import DuckDBWarehouse  # noqa: E402
from benchmarks import simulate as sim  # noqa: E402
from benchmarks.services import backfill_env, celery_worker, redis_server  # noqa: E402

PIPELINE = REPO / "benchmarks" / "sleep_pipeline"


@dataclass(frozen=True)
class Measured:
    slots: int
    tasks: int
    scale: float  # real seconds per simulated second
    lower_bound: float  # real seconds: max(critical path, work / C) of the scaled workload
    simulated: float  # the simulation's dependency dispatch, real seconds
    simulated_recent: float  # its most recent season's finish, as a fraction of its makespan
    engine: float  # start_run to the run's last task finished, real seconds
    engine_recent: float  # the most recent season's last task, as a fraction of `engine`
    failed: int
    load: float  # 1-minute load average when the run ended (a shared machine)


def schedule_only(base: Path, dest: Path) -> None:
    """A warehouse holding just the real schedule: all the sleeping pipeline reads."""
    con = duckdb.connect(str(dest))
    try:
        con.execute(f"ATTACH '{base}' AS src (READ_ONLY)")
        con.execute("CREATE SCHEMA nba_raw")
        con.execute("CREATE TABLE nba_raw.schedule AS SELECT * FROM src.nba_raw.schedule")
    finally:
        con.close()


def plan_for(spec: PipelineSpec, cal: Calendar, slots: int, order: str = "recent-first") -> Plan:
    return build_plan(spec, cal, PlanRequest(ranges=((cal.dates[0], cal.dates[-1]),), phases=frozenset({3, 4}),
                                             batch="auto", profile=BIGQUERY, concurrency=slots, order=order))


def run_once(schedule: Path, work: Path, redis_url: str, spec: PipelineSpec, cal: Calendar, slots: int,
             seconds: float) -> Measured:
    plan = plan_for(spec, cal, slots)
    costs = sim.bigquery_like_costs(spec)
    s = sim.durations(plan.tasks(), costs)
    lb, _, _ = sim.lower_bound(list(plan.tasks()), s, slots)
    simulated = sim.dependency(plan, s, slots)
    latest = max(cal.seasons)
    scale = seconds / lb
    costs_file = work / f"costs_{slots}.json"
    costs_file.write_text(json.dumps({n: [c.fixed_seconds * scale, c.per_date_seconds * scale]
                                      for n, c in costs.items()}))
    path = work / f"sleep_{slots}.duckdb"
    shutil.copy(schedule, path)
    home = work / f"home_sleep_{slots}"
    # The window a little above the slots: Redis keeps the rest in priority order (recent season
    # first); a larger window would queue ready tasks in the broker first come, first served.
    # C slots means C concurrent warehouse jobs: the shared throttle's ceiling (default 20) is
    # raised to C, as a user running 64 slots against BigQuery would set it.
    jobs = max(slots, Settings().max_warehouse_jobs)
    env = backfill_env(redis_url, path, home, dispatch_window=str(slots + 2), max_warehouse_jobs=str(jobs))
    settings = Settings(home=home, warehouse=f"duckdb:///{path}", redis_url=redis_url,  # type: ignore[arg-type]
                        dispatch_window=slots + 2, alerts="off", max_warehouse_jobs=jobs)
    from backfill.cli.run import prepare_targets
    from backfill.triggers import Triggers
    from workers.factory import create_app
    from workers.tasks import CeleryDispatcher

    store = RedisStateStore.from_url(redis_url)
    with celery_worker(env, home, f"sleep{slots}", slots):
        with DuckDBWarehouse(path, hold=False) as w:
            prepare_targets(spec, w, plan)
        record = RunRecord(run_id=engine.new_run_id(), pipeline=str(PIPELINE),
                           request={**plan.request.to_json(), "options": {"costs_file": str(costs_file)}},
                           alerts="off", strict=True, history_table=spec.run_history_table)
        began = time.time()
        engine.start_run(store, CeleryDispatcher(create_app(settings)), plan, record, Triggers(store.client),
                         settings)
        deadline = time.monotonic() + 20 * seconds + 120
        while (run := store.get_run(record.run_id)) is not None and run.status.active:
            if time.monotonic() > deadline:
                raise RuntimeError(f"C={slots}: run {record.run_id} did not finish in time")
            time.sleep(0.1)
    con = duckdb.connect(str(path), read_only=True)
    try:
        end, season_end, failed = con.execute(
            f"SELECT MAX(epoch(finished_at)), MAX(epoch(finished_at)) FILTER (WHERE season = ?), "
            f"COUNT(DISTINCT task_id) FILTER (WHERE status <> 'success') FROM {spec.run_history_table}",
            [latest]).fetchone()  # type: ignore[misc]
    finally:
        con.close()
    makespan = float(end) - began
    return Measured(slots, len(plan), scale, lb * scale, simulated.makespan * scale,
                    simulated.season_done(plan.tasks(), latest) / simulated.makespan, makespan,
                    (float(season_end) - began) / makespan, int(failed), os.getloadavg()[0])


def engine_section(base: Path, work: Path, slots: list[int], seconds: float) -> list[str]:
    """Run the sleeping pipeline for each C; the report's lines."""
    spec = load_spec(PIPELINE)
    schedule = work / "schedule.duckdb"
    schedule_only(base, schedule)
    with DuckDBWarehouse(schedule, read_only=True) as w:
        cal = Calendar.from_warehouse(w, spec.schedule_table)
    rows = []
    with redis_server(work) as url:
        for c in slots:
            m = run_once(schedule, work, url, spec, cal, c, seconds)
            print(f"  ran sleeping pipeline at C={c}: {m.tasks} tasks in {m.engine:.1f} s", flush=True)
            rows.append(m)
    out = ["simulated BigQuery-like workload through the real engine (benchmarks/sleep_pipeline: the NBA "
           "pipeline's shape, processors sleep their simulated cost; real redis-server, one Celery worker "
           "with C threads, checks and run history on DuckDB; recent-first):",
           f"  {'C':>3} {'tasks':>6} {'1 real s =':>11} {'LB s':>6} {'engine s':>9} {'engine/LB':>10} "
           f"{'sim/LB':>7} {'engine/sim':>11} {'recent done: engine':>20} {'sim':>5} {'failed':>7} {'load':>5}"]
    for m in rows:
        out.append(f"  {m.slots:3d} {m.tasks:6d} {1 / m.scale / 3600:9.2f} h {m.lower_bound:6.1f} {m.engine:9.1f} "
                   f"{m.engine / m.lower_bound:10.3f} {m.simulated / m.lower_bound:7.3f} "
                   f"{m.engine / m.simulated:11.3f} {m.engine_recent:20.0%} {m.simulated_recent:5.0%} {m.failed:7d} "
                   f"{m.load:5.1f}")
    out.append("  LB = max(critical path, work / C) of the plan's tasks at their scaled costs (no engine overhead); "
               "engine = start_run to the last task's finish (run history); targets: engine/LB <= 1.10, "
               "recent season <= 35%")
    return out


def main() -> int:
    from pipelines.nba.importer import default_data_dir, import_nba

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--slots", default="4,16,64")
    parser.add_argument("--seconds", type=float, default=30.0, help="the lower bound of each run, real seconds")
    args = parser.parse_args()
    if not (args.data / "player_logs").is_dir():
        print(f"real NBA data not found under {args.data}: set BACKFILL_NBA_DATA or pass --data", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-sleep-"))
    try:
        base = work / "base.duckdb"
        with DuckDBWarehouse(base) as w:
            import_nba(w, args.data)
        print("\n".join(engine_section(base, work, [int(c) for c in args.slots.split(",")], args.seconds)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
