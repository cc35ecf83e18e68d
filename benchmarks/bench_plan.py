"""Benchmark: plan Phases 3 and 4 over all five real NBA seasons; time and peak memory vs the targets.

    python benchmarks/bench_plan.py [--data ../shared/data/nba] [--repeat 5]

The raw data is loaded into a temporary DuckDB file by a child process first (the real CSVs
through the importer, or the synthetic sample league over five seasons when they are absent),
so this process's peak RSS covers only reading the schedule, building the calendar and planning.
Targets (issue 2): under 2 s and under 300 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backfill.calendar import Calendar  # noqa: E402
from backfill.planner import Plan, PlanRequest, build_plan  # noqa: E402
from backfill.spec import PipelineSpec, load_spec  # noqa: E402
from backfill.warehouse import open_warehouse  # noqa: E402
from pipelines.nba.importer import default_data_dir  # noqa: E402

TARGET_SECONDS = 2.0
TARGET_MB = 300.0
FIVE_SEASONS = ("2020-21", "2021-22", "2022-23", "2023-24", "2024-25")


def prepare(path: Path, data: Path) -> None:
    """Child process: fill the warehouse's raw tables."""
    wh = open_warehouse(f"duckdb:///{path}")
    if (data / "player_logs").is_dir():
        from pipelines.nba.importer import import_nba

        import_nba(wh, data)
    else:
        from pipelines.nba.sample import load_sample

        load_sample(wh, seasons=FIVE_SEASONS, seed=7)
    wh.close()


def request_for(calendar: Calendar) -> PlanRequest:
    return PlanRequest(ranges=((calendar.dates[0], calendar.dates[-1]),), phases=frozenset({3, 4}))


def plan_once(spec: PipelineSpec, warehouse_url: str) -> tuple[float, float, Plan, Calendar]:
    """(seconds for build_plan alone, seconds including reading the schedule and building the calendar)."""
    began = time.perf_counter()
    wh = open_warehouse(warehouse_url)
    calendar = Calendar.from_warehouse(wh, spec.schedule_table)
    wh.close()
    planning = time.perf_counter()
    plan = build_plan(spec, calendar, request_for(calendar))
    done = time.perf_counter()
    return done - planning, done - began, plan, calendar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.data)
        return

    source = (f"real NBA data from {args.data} (importer)" if (args.data / "player_logs").is_dir()
              else "synthetic sample league, seasons " + ", ".join(FIVE_SEASONS) + " (real data absent)")
    spec = load_spec(REPO / "pipelines" / "nba")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        began = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--prepare", str(db), "--data", str(args.data)],
                       check=True, cwd=REPO)
        load_seconds = time.perf_counter() - began
        url = f"duckdb:///{db}"

        runs = [plan_once(spec, url) for _ in range(args.repeat)]
        plan_s = min(r[0] for r in runs)
        total_s = min(r[1] for r in runs)
        _, _, plan, calendar = runs[-1]

        tracemalloc.start()
        plan_once(spec, url)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    traced_mb = traced_peak / 2**20

    seasons = ", ".join(f"{label} ({len(s.dates)})" for label, s in calendar.seasons.items())
    est = plan.estimates
    print(f"data: {source}; loaded in {load_seconds:.1f} s (not counted)")
    print(f"calendar: {len(calendar.dates)} game dates {calendar.dates[0]} .. {calendar.dates[-1]}: {seasons}")
    print(f"plan: phases 3,4, {len(spec.select({3, 4}))} processors, {est.tasks} tasks in {est.waves} waves, "
          f"{plan.counts.get('bootstrap', 0)} bootstrap; wall {dt.timedelta(seconds=round(est.wall_seconds))} "
          f"at concurrency {est.concurrency} vs sequential {dt.timedelta(seconds=round(est.sequential_seconds))}")
    print(f"build_plan only:                 {plan_s:7.3f} s  = {plan_s / TARGET_SECONDS:5.2f} x the 2 s target"
          f" (best of {args.repeat})")
    print(f"schedule read + calendar + plan: {total_s:7.3f} s  = {total_s / TARGET_SECONDS:5.2f} x the 2 s target")
    print(f"peak traced Python memory:       {traced_mb:7.1f} MB = {traced_mb / TARGET_MB:5.2f} x the 300 MB target")
    print(f"peak RSS (ru_maxrss, process):   {rss_mb:7.1f} MB = {rss_mb / TARGET_MB:5.2f} x the 300 MB target")
    ok = total_s < TARGET_SECONDS and rss_mb < TARGET_MB
    print("within targets" if ok else "OVER TARGET")


if __name__ == "__main__":
    main()
