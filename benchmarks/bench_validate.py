"""Benchmark: `backfill validate` over four real seasons (2021-22 to 2024-25) on DuckDB.

Usage: python benchmarks/bench_validate.py [--data DIR] [--workdir DIR] [--seasons 2021-22,...]

Builds the warehouse once (import, then Phases 3 and 4 in-process, one task per processor and
season, run history written), or reuses `--workdir`'s. Then runs the real CLI, `backfill validate`
over the whole span, as a user would (a new process: start-up included), and prints its wall time
and the time of each check. The target is under 30 s on this machine (the issue's figure).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backfill.calendar import Calendar  # noqa: E402
from backfill.executor import execute_task  # noqa: E402
from backfill.planner import PlanRequest, build_plan  # noqa: E402
from backfill.runhistory import RowContext, RunHistory, build_rows  # noqa: E402
from backfill.spec import load_spec  # noqa: E402
from backfill.warehouse.duckdb import DuckDBWarehouse  # noqa: E402
from pipelines.nba.importer import default_data_dir  # noqa: E402

SEASONS = ("2021-22", "2022-23", "2023-24", "2024-25")


def build(data: Path, seasons: Sequence[str], path: Path) -> None:
    from pipelines.nba.importer import import_nba

    subset = path.parent / "data"
    for folder in ("player_logs", "playoff_player_logs"):
        (subset / folder).mkdir(parents=True, exist_ok=True)
    for s in seasons:
        for src in (data / "player_logs" / f"player_logs_{s}.csv", data / "playoff_player_logs" / f"P{s[-2:]}.csv"):
            link = subset / src.parent.name / src.name
            if src.is_file() and not link.exists():
                link.symlink_to(src)
    spec = load_spec(REPO / "pipelines" / "nba")
    with DuckDBWarehouse(path) as w:
        import_nba(w, subset)
        cal = Calendar.from_warehouse(w, spec.schedule_table)
        history = RunHistory(w, spec.run_history_table)
        history.ensure()
        ranges = tuple((cal.seasons[s].start, cal.seasons[s].end) for s in seasons)
        request = PlanRequest(ranges=ranges, phases=frozenset({3, 4}), batch_sizes={n: 400 for n in spec.processors})
        for task in build_plan(spec, cal, request).tasks():
            result = execute_task(task, w, spec, run_id="bench-validate", calendar=cal)
            if result.status != "success":
                print(f"  {task.id}: {result.status} {result.error_message}")
            history.write(build_rows(task, "bench-validate", RowContext.of(spec), result=result.to_json()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--seasons", default=",".join(SEASONS))
    args = parser.parse_args(argv)
    seasons = [s.strip() for s in args.seasons.split(",") if s.strip()]
    if not all((args.data / "player_logs" / f"player_logs_{s}.csv").is_file() for s in seasons):
        print(f"skipped: real NBA data for {', '.join(seasons)} not found under {args.data} (set BACKFILL_NBA_DATA)")
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-validate-"))
    work.mkdir(parents=True, exist_ok=True)
    path = work / "warehouse.duckdb"
    if not path.exists():
        began = time.perf_counter()
        build(args.data, seasons, path)
        print(f"built {', '.join(seasons)} (Phases 3 and 4, run history) in {time.perf_counter() - began:.1f}s: {path}")
    with DuckDBWarehouse(path, read_only=True) as w:
        cal = Calendar.from_warehouse(w, "nba_raw.schedule")
    lo, hi = cal.seasons[seasons[0]].start, cal.seasons[seasons[-1]].end
    argv_cli = [sys.executable, "-m", "backfill.cli", "--warehouse", f"duckdb:///{path}", "validate",
                "--start", lo.isoformat(), "--end", hi.isoformat(), "--seed", "1", "--json"]
    began = time.perf_counter()
    done = subprocess.run(argv_cli, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode not in (0, 1):
        print(done.stderr)
        return done.returncode
    report = json.loads(done.stdout)
    print(f"backfill validate {lo}..{hi}: {report['game_dates']} game dates, {len(report['processors'])} processors, "
          f"exit {done.returncode} ({'passed' if report['passed'] else 'FAILED'})")
    for c in report["checks"]:
        print(f"  {c['title']:32} {'pass' if c['passed'] else 'FAIL'}  {'; '.join(c['figures'])[:110]}")
    print(f"wall {wall:.1f}s (new process, start-up included); checks {report['seconds']:.1f}s; target < 30 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
