"""The benchmark suite in one run (`scripts/bench`): real data through the engine, a simulated
BigQuery-like workload, and the orchestration overhead, printed side by side.

    scripts/bench [--data ../shared/data/nba] [--skip-real] [--skip-orchestration] [--slots 4,16,64]

1. Real data, five seasons, Phases 3+4, DuckDB, through the real engine (a real redis-server, one
   `celery worker --pool threads -c 2`, `backfill enqueue --wait`): `--batch auto` vs `--batch 1`
   vs one task per processor and season (`--batch 400`); wall seconds, ratios, table checksums
   (rows and SUM(HASH(row)) per table), and when the most recent season was complete.
2. Simulated BigQuery-like workload over the same real plan (`benchmarks/simulate.py`, a
   discrete-event simulation, not the engine): for C slots, our plan and dispatch vs the lower
   bound max(critical path, work / C), vs the users' strategies, and the recent season's finish.
3. `benchmarks/bench_orchestration.py`: 2,000 no-op tasks, engine vs a plain Celery chord.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backfill.calendar import Calendar  # noqa: E402
from backfill.planner import PlanRequest, build_plan  # noqa: E402
from backfill.planner.batching import BIGQUERY  # noqa: E402
from backfill.spec import PipelineSpec, load_spec  # noqa: E402
from backfill.warehouse.duckdb import DuckDBWarehouse  # noqa: E402
from benchmarks import simulate as sim  # noqa: E402
from pipelines.nba.importer import default_data_dir  # noqa: E402

MODES = (("auto", "auto"), ("batch 1", "1"), ("per season", "400"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def checksums(path: Path, spec: PipelineSpec) -> dict[str, tuple[int, int]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for p in spec.processors.values():
            n, h = con.execute(f"SELECT COUNT(*), SUM(HASH(CAST(t AS VARCHAR))) FROM {p.target} AS t").fetchone()  # type: ignore[misc]
            out[p.target] = (int(n), int(h or 0))
        return out
    finally:
        con.close()


def recent_fraction(path: Path, season: str) -> float:
    """When the most recent season's last task finished, as a fraction of the run (from run history)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        t0, t_end, t_season = con.execute(
            "SELECT MIN(started_at), MAX(finished_at), MAX(finished_at) FILTER (WHERE season = ?) "
            "FROM nba_reference.processor_run_history", [season]).fetchone()  # type: ignore[misc]
        total = (t_end - t0).total_seconds()
        return (t_season - t0).total_seconds() / total if total else 0.0
    finally:
        con.close()


def run_engine(base: Path, work: Path, label: str, batch: str, start: dt.date, end: dt.date,
               redis_url: str) -> tuple[float, int, Path]:
    """Copy the raw warehouse, start one worker on it, `enqueue --wait`; (wall s, tasks, file)."""
    path = work / f"{label.replace(' ', '_')}.duckdb"
    shutil.copy(base, path)
    home = work / f"home_{label.replace(' ', '_')}"
    home.mkdir()
    env = dict(os.environ, BACKFILL_REDIS_URL=redis_url, BACKFILL_WAREHOUSE=f"duckdb:///{path}",
               BACKFILL_HOME=str(home), PYTHONPATH=str(REPO))
    log = (home / "worker.log").open("w")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "threads",
                               "-c", "2", "--loglevel", "INFO", "-n", f"bench-{label.replace(' ', '_')}@%h",
                               "--without-mingle", "--without-gossip"], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while " ready." not in (home / "worker.log").read_text(errors="replace"):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError((home / "worker.log").read_text(errors="replace")[-2000:])
            time.sleep(0.2)
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "backfill.cli", "enqueue", "--start", start.isoformat(),
                               "--end", end.isoformat(), "--phases", "3,4", "--batch", batch, "--wait"],
                              cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(f"{label}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        tasks = next((int(w) for line in done.stderr.splitlines() if line.startswith("enqueued")
                      for w in line.split()[1:2]), 0)
        return wall, tasks, path
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def real_section(base: Path, work: Path, spec: PipelineSpec, calendar: Calendar,
                 modes: list[str]) -> list[str]:
    port = free_port()
    redis = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "",
                              "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    latest = max(calendar.seasons)
    rows = []
    try:
        time.sleep(0.3)
        for label, batch in [(lbl, b) for lbl, b in MODES if b in modes]:
            wall, tasks, path = run_engine(base, work, label, batch, calendar.dates[0], calendar.dates[-1], url)
            rows.append((label, batch, wall, tasks, checksums(path, spec), recent_fraction(path, latest)))
            print(f"  ran {label}: {tasks} tasks in {wall:.1f} s", flush=True)
    finally:
        redis.kill()
    ref = next((r[4] for r in rows if r[1] == "1"), rows[0][4])
    auto_wall = rows[0][2]
    out = ["real data, five seasons, Phases 3+4, DuckDB, one worker (threads x2), through the engine "
           "(measured: real redis-server, Celery worker, `enqueue --wait`):",
           f"  {'mode':12} {'--batch':>8} {'tasks':>7} {'wall s':>8} {'vs auto':>8} {'recent season done':>19} "
           f"{'tables = batch 1' if any(r[1] == '1' for r in rows) else 'tables = first':>17}"]
    for label, batch, wall, tasks, sums, frac in rows:
        out.append(f"  {label:12} {batch:>8} {tasks:7d} {wall:8.1f} {wall / auto_wall:7.2f}x {frac:18.0%} "
                   f"{str(sums == ref):>17}")
    out.append(f"  rows: {sum(n for n, _ in ref.values()):,} in {len(ref)} tables; target: auto < 30 s")
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
    parser.add_argument("--skip-orchestration", action="store_true")
    parser.add_argument("--modes", default="auto,1,400", help="--batch values of the real-data runs")
    args = parser.parse_args()
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
        report += simulated_section(spec, calendar, [int(c) for c in args.slots.split(",")])
        if not args.skip_real:
            report += [""] + real_section(base, work, spec, calendar, args.modes.split(","))
        if not args.skip_orchestration:
            done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_orchestration.py")],
                                  cwd=REPO, capture_output=True, text=True)
            report += ["", "orchestration overhead (measured, benchmarks/bench_orchestration.py):"]
            report += ["  " + line for line in (done.stdout or done.stderr).strip().splitlines()[-4:]]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + "\n".join(report))
    print(f"\nbenchmark took {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
