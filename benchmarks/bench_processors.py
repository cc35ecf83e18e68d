"""Benchmark: one real season (2023-24), Phases 3 and 4, on DuckDB with one thread and with two.

Usage: python benchmarks/bench_processors.py [--data DIR] [--season 2023-24] [--workdir DIR]

Each run starts from a fresh copy of the freshly imported raw data. The two-thread run executes
the plan wave by wave (a wave's tasks depend only on earlier waves), the way the Celery engine
does; transient DuckDB write conflicts between threads are retried, as the engine would. The
two runs must end with identical tables (checked by per-table checksums).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backfill.calendar import Calendar  # noqa: E402
from backfill.errors import TransientWarehouseError  # noqa: E402
from backfill.executor import TaskResult, execute_task  # noqa: E402
from backfill.planner import Plan, PlanRequest, build_plan  # noqa: E402
from backfill.planner.model import Task  # noqa: E402
from backfill.spec import PipelineSpec, load_spec  # noqa: E402
from backfill.warehouse import Warehouse  # noqa: E402
from backfill.warehouse.duckdb import DuckDBWarehouse  # noqa: E402
from pipelines.nba.importer import default_data_dir  # noqa: E402


def import_season(data: Path, season: str, path: Path) -> None:
    """Import only the season's regular-season and playoff logs (the import replaces whole seasons)."""
    from pipelines.nba.importer import import_nba

    subset = path.parent / "data"
    (subset / "player_logs").mkdir(parents=True, exist_ok=True)
    (subset / "playoff_player_logs").mkdir(parents=True, exist_ok=True)
    logs = data / "player_logs" / f"player_logs_{season}.csv"
    playoffs = data / "playoff_player_logs" / f"P{season[-2:]}.csv"
    (subset / "player_logs" / logs.name).symlink_to(logs)
    if playoffs.is_file():
        (subset / "playoff_player_logs" / playoffs.name).symlink_to(playoffs)
    with DuckDBWarehouse(path) as w:
        import_nba(w, subset)


def run_task(task: Task, w: Warehouse, spec: PipelineSpec) -> TaskResult:
    for attempt in range(1, 8):
        try:
            return execute_task(task, w, spec, attempt=attempt)
        except TransientWarehouseError:
            time.sleep(0.02 * attempt)
    return execute_task(task, w, spec, attempt=8, raise_transient=False)


def execute(plan: Plan, spec: PipelineSpec, path: Path, threads: int) -> tuple[float, dict[str, float], int]:
    """Wall seconds, task seconds per processor, failed tasks."""
    per: dict[str, float] = defaultdict(float)
    failed = 0
    began = time.perf_counter()
    with DuckDBWarehouse(path) as w, ThreadPoolExecutor(max_workers=threads) as pool:
        for wave in plan.waves:
            for result in pool.map(lambda t: run_task(t, w, spec), wave):
                per[result.processor] += result.duration_seconds
                if not result.ok:
                    failed += 1
                    print(f"  failed: {result.task_id} [{result.error_category}] {result.error_message}")
    return time.perf_counter() - began, dict(per), failed


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


def plausibility(path: Path, spec: PipelineSpec) -> list[str]:
    """Per table: rows per date (min-max), dates, NULLs in required columns; key metric ranges."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        lines = []
        for p in spec.processors.values():
            lo, hi, days = con.execute(f"SELECT MIN(n), MAX(n), COUNT(*) FROM (SELECT COUNT(*) AS n FROM {p.target} "
                                       f"GROUP BY {p.partition})").fetchone()  # type: ignore[misc]
            nulls = 0
            for c in p.columns:
                if c.required:
                    found = con.execute(f"SELECT COUNT(*) FROM {p.target} WHERE {c.name} IS NULL").fetchone()
                    nulls += int(found[0]) if found else 0
            lines.append(f"  {p.target:46} {days:4d} dates, {lo}-{hi} rows/date, {nulls} NULLs in required columns")
        m = con.execute("SELECT MIN(minutes), MAX(minutes), MIN(fg_pct), MAX(fg_pct), MAX(fg3_pct), MAX(ft_pct) "
                        "FROM nba_analytics.player_game_summary").fetchone()
        lines.append(f"  minutes {m[0]}-{m[1]}; fg% {m[2]}-{m[3]}; max 3p% {m[4]}; max ft% {m[5]}")  # type: ignore[index]
        q = con.execute("SELECT MIN(feature_quality), AVG(feature_quality), COUNTIF(bootstrap), COUNT(*) "
                        "FROM nba_precompute.ml_feature_store").fetchone()
        lines.append(f"  feature_quality {q[0]}-1 (mean {q[1]:.3f}); bootstrap rows {q[2]} of {q[3]}")  # type: ignore[index]
        return lines
    finally:
        con.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--season", default="2023-24")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.data / "player_logs" / f"player_logs_{args.season}.csv").is_file():
        print(f"skipped: real NBA data for {args.season} not found under {args.data} (set BACKFILL_NBA_DATA)")
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-processors-"))
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base.duckdb"
    began = time.perf_counter()
    import_season(args.data, args.season, base)
    print(f"imported {args.season} in {time.perf_counter() - began:.1f}s ({work})")

    spec = load_spec(REPO / "pipelines" / "nba")
    with DuckDBWarehouse(base) as w:
        cal = Calendar.from_warehouse(w, "nba_raw.schedule")
    season = cal.seasons[args.season]
    plan = build_plan(spec, cal, PlanRequest(ranges=((season.start, season.end),), phases=frozenset({3, 4})))
    print(f"plan: {len(plan)} tasks over {len(season.dates)} game dates, {len(plan.waves)} waves, "
          f"duckdb {duckdb.__version__}, {os.cpu_count()} cpus")

    runs = {}
    for threads in (1, 2):
        path = work / f"threads{threads}.duckdb"
        shutil.copy(base, path)
        runs[threads] = (*execute(plan, spec, path, threads), checksums(path, spec))

    print(f"\n{'processor':32} {'1 thread (s)':>13} {'2 threads (s)':>14}   (sum of task times)")
    for name in spec.order:
        print(f"{name:32} {runs[1][1].get(name, 0):13.1f} {runs[2][1].get(name, 0):14.1f}")
    print(f"{'sum of task times':32} {sum(runs[1][1].values()):13.1f} {sum(runs[2][1].values()):14.1f}")
    print(f"{'WALL TIME':32} {runs[1][0]:13.1f} {runs[2][0]:14.1f}")
    print(f"\nspeed-up with 2 threads: {runs[1][0] / runs[2][0]:.2f}x; failed tasks: {runs[1][2]} / {runs[2][2]}")
    same = runs[1][3] == runs[2][3]
    print(f"tables identical after both runs: {same}")
    for target, (n, _) in runs[1][3].items():
        print(f"  {target:46} {n:8d} rows")
    print("plausibility:")
    print("\n".join(plausibility(work / "threads1.duckdb", spec)))
    return 0 if same and not runs[1][2] and not runs[2][2] else 1


if __name__ == "__main__":
    raise SystemExit(main())
