"""`gaps --verify`: partitions the run history calls done whose rows are gone or short.

The run history is the record of what ran, not of what is still there: rows deleted after a
successful run leave a `success` record over an empty partition, which `gaps` (history only)
and `enqueue` (it skips what succeeded) both take for done. This compares each such partition
with its table: empty where the schedule says it cannot be (`checks.Emptiness`), or fewer rows
than the successful write recorded (`records_processed`). Refilling them needs `--force`, which
is what `recompute_commands` prints.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backfill.calendar import Calendar, as_date
from backfill.checks import Emptiness
from backfill.runhistory import DONE_STATUSES, RunHistory
from backfill.spec import PipelineSpec
from backfill.warehouse import Warehouse


@dataclass(frozen=True)
class Hole:
    """A partition whose latest run succeeded but whose table holds no or fewer rows now."""

    processor: str
    date: dt.date
    rows: int
    recorded: int

    @property
    def reason(self) -> str:
        if self.rows == 0:
            return f"success in the run history, but its partition is empty now (the run wrote {self.recorded} rows)"
        return f"success in the run history, but only {self.rows} of the {self.recorded} rows it wrote are left"


def partition_rows(spec: PipelineSpec, warehouse: Warehouse, processor: str,
                   dates: Sequence[dt.date]) -> dict[dt.date, int]:
    """Rows per partition date in the processor's table (dates without rows are absent)."""
    proc = spec.processors[processor]
    if not dates or not warehouse.table_exists(proc.target):
        return {}
    return {as_date(r["d"]): int(r["n"]) for r in warehouse.query(
        f"SELECT {proc.partition} AS d, COUNT(*) AS n FROM {proc.target} "
        f"WHERE {proc.partition} IN UNNEST(@dates) GROUP BY 1", {"dates": sorted(dates)})}


def verify_done(spec: PipelineSpec, calendar: Calendar, warehouse: Warehouse, names: Sequence[str],
                dates: Sequence[dt.date]) -> list[Hole]:
    """The partitions of `names` x `dates` whose latest run succeeded but whose rows are gone or short.

    One history query and one grouped count per processor table (partition-filtered).
    """
    if not dates:
        return []
    picked = set(dates)
    latest: Mapping[tuple[str, dt.date], Any] = {
        (str(r["processor_name"]), as_date(r["data_date"])): r
        for r in RunHistory.of(warehouse, spec).latest(min(dates), max(dates), names)
        if r["status"] in DONE_STATUSES and as_date(r["data_date"]) in picked}
    per: dict[str, list[dt.date]] = defaultdict(list)
    for name, day in latest:
        per[name].append(day)
    emptiness = Emptiness(spec, calendar)
    holes: list[Hole] = []
    for name in names:
        days = sorted(per.get(name, []))
        counts = partition_rows(spec, warehouse, name, days)
        for day in days:
            rows = counts.get(day, 0)
            recorded = int(latest[(name, day)].get("records_processed") or 0)
            if (rows == 0 and not emptiness.may_be_empty(name, day)) or rows < recorded:
                holes.append(Hole(name, day, rows, recorded))
    return holes
