"""The benchmark suite in one run (`scripts/bench`): real data through the engine, the simulated
BigQuery-like workload on paper and through the engine, and the orchestration overhead.

    scripts/bench [--data ../shared/data/nba] [--modes ...] [--slots 4,16,64] [--seconds 30]
                  [--skip-real] [--skip-engine-sim] [--skip-orchestration] [--keep]

1. Real data, Phases 3+4, DuckDB, through the real engine (a real redis-server, one
   `celery worker --pool threads -c 2`, `backfill enqueue --wait`): `--batch auto` over five
   seasons (default dispatch window, and a window of 4 so Redis, not the broker's FIFO, orders
   the ready tasks) vs one task per processor and season (`--batch 400`: on DuckDB the same plan
   as auto, compared task by task rather than run again unless `--modes` has 400), and `--batch auto` vs
   `--batch 1` over the latest season (five seasons of `--batch 1`, 10,200 tasks, do not fit the
   10-minute budget: `--modes 1` runs them); wall seconds, ratios, table checksums (rows and
   SUM(HASH(row)) per table) and when the latest season was complete (run history).
2. Simulated BigQuery-like workload over the same real plan (`benchmarks/simulate.py`, a
   discrete-event simulation): for C slots, our plan and dispatch vs the lower bound
   max(critical path, work / C), vs the users' strategies, and the recent season's finish.
3. The same workload through the real engine (`benchmarks/bench_sleep.py`): sleeping processors,
   one worker with C threads, makespan vs the lower bound and vs the simulation.
4. `benchmarks/bench_orchestration.py`: 2,000 no-op tasks, engine vs a plain Celery chord.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backfill.calendar import Calendar  # noqa: E402
from backfill.planner import PlanRequest, build_plan  # noqa: E402
from backfill.planner.batching import BIGQUERY, DUCKDB  # noqa: E402
from backfill.spec import PipelineSpec, load_spec  # noqa: E402
from backfill.warehouse.duckdb import DuckDBWarehouse  # noqa: E402
from benchmarks import bench_sleep  # noqa: E402
from benchmarks import simulate as sim  # noqa: E402
from benchmarks.services import backfill_env, celery_worker, redis_server  # noqa: E402
from pipelines.nba.importer import default_data_dir  # noqa: E402


@dataclass(frozen=True)
class Mode:
    """One real-data run: `enqueue --batch` over all seasons or only the latest, and the dispatch window."""

    label: str
    batch: str
    latest_only: bool = False
    window: int | None = None  # BACKFILL_DISPATCH_WINDOW; None: the default (64)


MODES = (Mode("auto", "auto"), Mode("auto, window 4", "auto", window=4), Mode("per season", "400"),
         Mode("auto", "auto", latest_only=True), Mode("batch 1", "1", latest_only=True),
         Mode("batch 1", "1"))
DEFAULT_MODES = "auto,auto-w4,auto-latest,1-latest"


def mode_key(m: Mode) -> str:
    return f"{m.batch}{'-w' + str(m.window) if m.window else ''}{'-latest' if m.latest_only else ''}"


def checksums(path: Path, spec: PipelineSpec, season: str | None = None) -> dict[str, tuple[int, int]]:
    """Rows and SUM(HASH(row)) per target table, of one season or of all."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        where = "WHERE season = ?" if season else ""
        for p in spec.processors.values():
            n, h = con.execute(f"SELECT COUNT(*), SUM(HASH(CAST(t AS VARCHAR))) FROM {p.target} AS t {where}",
                               [season] if season else []).fetchone()  # type: ignore[misc]
            out[p.target] = (int(n), int(h or 0))
        return out
    finally:
        con.close()


def finish_times(path: Path, season: str) -> tuple[float, float]:
    """Epoch seconds when the run's last task, and the season's last task, finished (run history)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        end, season_end = con.execute(
            "SELECT MAX(epoch(finished_at)), MAX(epoch(finished_at)) FILTER (WHERE season = ?) "
            "FROM nba_reference.processor_run_history", [season]).fetchone()  # type: ignore[misc]
        return float(end), float(season_end)
    finally:
        con.close()


@dataclass(frozen=True)
class RealRun:
    mode: Mode
    wall: float
    tasks: int
    recent: float  # the latest season complete, as a fraction of the wall time from `enqueue`
    latest: dict[str, tuple[int, int]]  # checksums of the latest season
    every: dict[str, tuple[int, int]]  # checksums of all seasons
    load: float  # the machine's 1-minute load average when the run ended (shared machine)


def run_engine(base: Path, work: Path, mode: Mode, calendar: Calendar, spec: PipelineSpec,
               redis_url: str) -> RealRun:
    """Copy the raw warehouse, start one worker (threads x2) on it, `enqueue --wait`, read the result."""
    name = mode_key(mode)
    path = work / f"{name}.duckdb"
    shutil.copy(base, path)
    home = work / f"home_{name}"
    latest = max(calendar.seasons)
    season = calendar.seasons[latest]
    start, end = (season.start, season.end) if mode.latest_only else (calendar.dates[0], calendar.dates[-1])
    env = backfill_env(redis_url, path, home, **({"dispatch_window": str(mode.window)} if mode.window else {}))
    with celery_worker(env, home, f"bench-{name}", 2):
        began = time.time()
        done = subprocess.run([sys.executable, "-m", "backfill.cli", "enqueue", "--start", start.isoformat(),
                               "--end", end.isoformat(), "--phases", "3,4", "--batch", mode.batch, "--wait"],
                              cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.time() - began
    if done.returncode != 0:
        raise RuntimeError(f"{name}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    tasks = next((int(w) for line in done.stderr.splitlines() if line.startswith("enqueued")
                  for w in line.split()[1:2]), 0)
    t_end, t_latest = finish_times(path, latest)
    return RealRun(mode, wall, tasks, (t_latest - began) / (t_end - began), checksums(path, spec, latest),
                   checksums(path, spec), os.getloadavg()[0])


def real_section(base: Path, work: Path, spec: PipelineSpec, calendar: Calendar, modes: list[str]) -> list[str]:
    latest = max(calendar.seasons)
    chosen = [m for m in MODES if mode_key(m) in modes]
    runs: list[RealRun] = []
    with redis_server(work) as url:
        for mode in chosen:
            run = run_engine(base, work, mode, calendar, spec, url)
            print(f"  ran {mode.label} ({'latest season' if mode.latest_only else 'five seasons'}): "
                  f"{run.tasks} tasks in {run.wall:.1f} s", flush=True)
            runs.append(run)
    one = next((r for r in runs if r.mode.batch == "1"), None)
    auto = {r.mode.latest_only: r for r in runs if r.mode.batch == "auto" and not r.mode.window}
    out = [f"real data, Phases 3+4, DuckDB, one worker (threads x2), through the engine (measured: real "
           f"redis-server, Celery worker, `backfill enqueue --wait`); latest season = {latest}:",
           f"  {'mode':15} {'--batch':>7} {'seasons':>8} {'tasks':>6} {'wall s':>7} {'vs auto':>8} "
           f"{'latest done at':>15} {'latest = batch 1':>17} {'all = auto':>11} {'load':>5}"]
    for r in runs:
        ref = auto.get(r.mode.latest_only)
        ratio = f"{r.wall / ref.wall:7.2f}x" if ref else f"{'-':>8}"
        same_latest = str(r.latest == one.latest) if one else "-"
        same_all = str(r.every == auto[False].every) if False in auto and not r.mode.latest_only else "-"
        out.append(f"  {r.mode.label:15} {r.mode.batch:>7} {'latest' if r.mode.latest_only else 'all 5':>8} "
                   f"{r.tasks:6d} {r.wall:7.1f} {ratio} {r.recent:14.0%} {same_latest:>17} {same_all:>11} "
                   f"{r.load:5.1f}")
    if one is not None and one.mode.latest_only:
        out.append(f"  --batch 1 ran over the latest season only: over all five seasons it is "
                   f"{sum(1 for _ in calendar.dates) * len(spec.processors):,} tasks, beyond this benchmark's "
                   f"10-minute budget (`--modes 1` runs it)")
    if not any(r.mode.batch == "400" for r in runs):
        full = ((calendar.dates[0], calendar.dates[-1]),)
        plans = [build_plan(spec, calendar, PlanRequest(ranges=full, phases=frozenset({3, 4}), batch=b, profile=DUCKDB))
                 for b in ("auto", 400)]
        same = [(t.id, t.dates) for t in plans[0].tasks()] == [(t.id, t.dates) for t in plans[1].tasks()]
        out.append(f"  per season (--batch 400) is {'the same plan as' if same else 'NOT the same plan as'} auto on "
                   f"DuckDB ({len(plans[1])} tasks, compared task by task), so it is not run again "
                   f"(`--modes 400` runs it)")
    ref_rows = runs[0].every
    out.append(f"  rows: {sum(n for n, _ in ref_rows.values()):,} in {len(ref_rows)} tables; target: auto over "
               f"all five seasons < 30 s; latest done at = when the latest season's last task finished, as a "
               f"fraction of the wall time; window = BACKFILL_DISPATCH_WINDOW (default 64); load = 1-minute load "
               f"average after the run ({os.cpu_count()} cores, shared)")
    return out


def simulated_section(spec: PipelineSpec, calendar: Calendar, slots: list[int]) -> list[str]:
    ranges = ((calendar.dates[0], calendar.dates[-1]),)
    phases = frozenset({3, 4})
    costs = sim.bigquery_like_costs(spec)
    one = build_plan(spec, calendar, PlanRequest(ranges=ranges, phases=phases, batch=1))
    s1 = sim.durations(one.tasks(), costs)
    latest = max(calendar.seasons)
    seq = sim.sequential(one, s1, spec)
    out = ["simulated BigQuery-like workload (discrete-event simulation of the policies over the real plan, "
           "benchmarks/simulate.py; not the engine):",
           f"  one-date job = spec estimate x U(0.75,1.25), 2/3 fixed; the planner sees only the spec's estimates; "
           f"{len(one)} (processor, date) jobs",
           f"  {'C':>3} {'ours tasks':>10} {'LB h':>7} {'ours/LB':>8} {'ours/LB@1':>10} {'waves/LB':>9} "
           f"{'seq/LB':>8} {'fixed10/LB':>11} {'violations':>11} {'recent done':>12} {'(waves)':>8}"]
    for c in slots:
        plan = build_plan(spec, calendar, PlanRequest(ranges=ranges, phases=phases, batch="auto",
                                                      profile=BIGQUERY, concurrency=c))
        s = sim.durations(plan.tasks(), costs)
        lb, _, _ = sim.lower_bound(list(plan.tasks()), s, c)
        lb1, _, _ = sim.lower_bound(list(one.tasks()), s1, c)
        ours = sim.dependency(plan, s, c)
        wv = sim.waves(plan, s, c)
        fixed = sim.fixed_batches(one, s1, c)
        out.append(f"  {c:3d} {len(plan):10d} {lb / 3600:7.2f} {ours.makespan / lb:8.3f} {ours.makespan / lb1:10.3f} "
                   f"{wv.makespan / lb:9.3f} {seq.makespan / lb:8.1f} {fixed.makespan / lb:11.2f} "
                   f"{fixed.violations:11,d} {ours.season_done(plan.tasks(), latest) / ours.makespan:12.0%} "
                   f"{wv.season_done(plan.tasks(), latest) / wv.makespan:8.0%}")
    out.append(f"  LB = max(critical path, work / C) of our batched plan; LB@1 the same for one-date jobs; "
               f"strictly sequential takes {seq.makespan / 3600:.1f} h; targets: ours/LB <= 1.10, "
               f"recent season <= 35%")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--slots", default="4,16,64")
    parser.add_argument("--skip-real", action="store_true", help="skip the real-data engine runs (minutes)")
    parser.add_argument("--skip-engine-sim", action="store_true", help="skip the sleeping pipeline's engine runs")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="lower bound of each sleeping-pipeline run, real seconds")
    parser.add_argument("--skip-orchestration", action="store_true")
    parser.add_argument("--modes", default=DEFAULT_MODES,
                        help="real-data runs: auto, auto-w4, 400, auto-latest, 1-latest, 1 (all five seasons)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (warehouses, logs)")
    args = parser.parse_args()
    unknown = set(args.modes.split(",")) - {mode_key(m) for m in MODES}
    if unknown:
        print(f"unknown --modes {', '.join(sorted(unknown))}: choose from {', '.join(mode_key(m) for m in MODES)}",
              file=sys.stderr)
        return 2
    try:
        slots = [int(c) for c in args.slots.split(",")]
        if min(slots) < 1:
            raise ValueError
    except ValueError:
        print(f"--slots {args.slots!r}: expected positive whole numbers separated by commas, e.g. 4,16,64",
              file=sys.stderr)
        return 2
    if not (args.data / "player_logs").is_dir():
        print(f"real NBA data not found under {args.data}: set BACKFILL_NBA_DATA or pass --data", file=sys.stderr)
        return 2
    began = time.perf_counter()
    spec = load_spec(REPO / "pipelines" / "nba")
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        base = work / "base.duckdb"
        from pipelines.nba.importer import import_nba

        with DuckDBWarehouse(base) as w:
            import_nba(w, args.data)
            calendar = Calendar.from_warehouse(w, spec.schedule_table)
        print(f"imported {len(calendar.seasons)} seasons ({', '.join(calendar.seasons)}), "
              f"{len(calendar.dates)} game dates in {time.perf_counter() - began:.0f} s", flush=True)
        report: list[str] = []
        report += simulated_section(spec, calendar, slots)
        if not args.skip_engine_sim:
            report += [""] + bench_sleep.engine_section(base, work, slots, args.seconds)
        if not args.skip_real:
            report += [""] + real_section(base, work, spec, calendar, args.modes.split(","))
        if not args.skip_orchestration:
            done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_orchestration.py")],
                                  cwd=REPO, capture_output=True, text=True)
            report += ["", "orchestration overhead (measured, benchmarks/bench_orchestration.py):"]
            report += ["  " + line for line in (done.stdout or done.stderr).strip().splitlines()[-4:]]
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\n" + "\n".join(report))
    print(f"\nload average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores shared with other work")
    print(f"\nbenchmark took {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
