"""Where a real five-season run spends its time: each processor's SQL write vs the executor's checks.

    .venv/bin/python benchmarks/profile_processors.py [--data DIR] [--workdir DIR] [--batch 400]

Imports the real NBA data (all seasons) into a DuckDB file (kept in --workdir and reused when
present), plans Phases 3+4 with one task per processor and season (`--batch 400`, what `auto`
picks on DuckDB) and runs every task in dependency order in this one process, with the
defensive upstream check the engine passes (this run's finished tasks count as done). Time is
split per processor into the SQL write (`replace_partitions`) and everything else the executor
does around it (upstream check, post-write outcome checks, registry hook). No Redis, no Celery:
this isolates the warehouse work the engine cannot make faster.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backfill.calendar import Calendar  # noqa: E402
from backfill.checks import UpstreamCheck  # noqa: E402
from backfill.executor import execute_task  # noqa: E402
from backfill.planner import PlanRequest, build_plan  # noqa: E402
from backfill.planner.model import TaskKey  # noqa: E402
from backfill.spec import load_spec  # noqa: E402
from backfill.warehouse.duckdb import DuckDBWarehouse  # noqa: E402
from backfill.warehouse.schema import TableSchema  # noqa: E402
from pipelines.nba.importer import default_data_dir, import_nba  # noqa: E402


class TimedWarehouse(DuckDBWarehouse):
    """Adds up the seconds spent in `replace_partitions` (the processor's SQL and its swap)."""

    write_seconds = 0.0

    def replace_partitions(self, table: TableSchema, dates: Sequence[dt.date], select_sql: str,
                           params: Mapping[str, Any] | None = None, **kw: Any) -> int:
        began = time.perf_counter()
        try:
            return super().replace_partitions(table, dates, select_sql, params, **kw)
        finally:
            self.write_seconds += time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--batch", default="400")
    parser.add_argument("--seasons", default="", help="only these seasons (comma-separated), e.g. 2024-25")
    args = parser.parse_args()
    if not (args.data / "player_logs").is_dir():
        print(f"real NBA data not found under {args.data}: set BACKFILL_NBA_DATA or pass --data", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="profile-"))
    work.mkdir(parents=True, exist_ok=True)
    spec = load_spec(REPO / "pipelines" / "nba")
    base = work / "raw.duckdb"
    if not base.exists():
        began = time.perf_counter()
        with DuckDBWarehouse(base) as w:
            import_nba(w, args.data)
        print(f"imported in {time.perf_counter() - began:.1f} s", flush=True)
    path = work / "run.duckdb"
    shutil.copy(base, path)
    with DuckDBWarehouse(base) as w:
        cal = Calendar.from_warehouse(w, spec.schedule_table)
    batch: int | str = args.batch if args.batch == "auto" else int(args.batch)
    plan = build_plan(spec, cal, PlanRequest(ranges=((cal.dates[0], cal.dates[-1]),), phases=frozenset({3, 4}),
                                             batch=batch, seasons=frozenset(args.seasons.split(",")) - {""} or None))
    done: dict[TaskKey, str] = {}
    write: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)
    failed = 0
    began = time.perf_counter()
    w = TimedWarehouse(path)
    with w:
        check = UpstreamCheck(spec, cal, w, in_run=lambda keys: {k: done[k] for k in keys if k in done})
        for wave in plan.waves:
            for task in wave:
                before = w.write_seconds
                t0 = time.perf_counter()
                result = execute_task(task, w, spec, check=check, calendar=cal, raise_transient=False)
                total[task.processor] += time.perf_counter() - t0
                write[task.processor] += w.write_seconds - before
                for d in task.dates:
                    done[(task.processor, d)] = result.date_status(d)
                if not result.ok:
                    failed += 1
                    print(f"  failed: {result.task_id} [{result.error_category}] {result.error_message}")
    wall = time.perf_counter() - began
    print(f"{len(plan)} tasks (--batch {args.batch}), {len(cal.dates)} game dates, one thread, {wall:.1f} s wall")
    print(f"{'processor':32} {'SQL write s':>12} {'checks s':>9} {'total s':>8}")
    for name in spec.order:
        if name in total:
            print(f"{name:32} {write[name]:12.2f} {total[name] - write[name]:9.2f} {total[name]:8.2f}")
    print(f"{'all':32} {sum(write.values()):12.2f} {sum(total.values()) - sum(write.values()):9.2f} "
          f"{sum(total.values()):8.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
