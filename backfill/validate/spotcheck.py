"""Spot checks: recompute a few (processor, date)s into a scratch table and compare with what is stored.

Counting rows and NULLs cannot see a value that is wrong but plausible (a corrupted score, a
formula changed by hand). Recomputing a partition from its inputs with the processor's own code
and comparing row by row can. The sample is drawn with a seed, so a finding can be reproduced
with `--seed`. The scratch table lives beside the target and is dropped afterwards; the target
is never written. Upstream data is read as it is now: a downstream partition computed from
upstream rows that changed since shows up as a difference too.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backfill.processors import Invocation, kind_of
from backfill.spec import Processor
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema, check_table_name

EXAMPLES = 5
_REL_TOLERANCE = 1e-6  # floating aggregates may differ in the last bits between two runs


@dataclass
class SpotCheck:
    processor: str
    date: dt.date
    stored: int = 0
    recomputed: int = 0
    differences: list[str] = field(default_factory=list)  # the first few, human readable
    different_rows: int = 0
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is not None or self.different_rows == 0

    def to_json(self) -> dict[str, Any]:
        return {"processor": self.processor, "date": self.date.isoformat(), "stored_rows": self.stored,
                "recomputed_rows": self.recomputed, "different_rows": self.different_rows,
                "differences": self.differences, "skipped": self.skipped}


def sample_partitions(candidates: Sequence[tuple[str, dt.date]], n: int, seed: int) -> list[tuple[str, dt.date]]:
    """The same `n` (processor, date)s for the same candidates and seed, on every machine."""
    pool = sorted(set(candidates))
    return sorted(random.Random(seed).sample(pool, min(n, len(pool))))


def spot_check(warehouse: Warehouse, proc: Processor, day: dt.date) -> SpotCheck:
    """Recompute one partition into a scratch table and list how it differs from the stored one."""
    result = SpotCheck(proc.name, day)
    if proc.http is not None:
        result.skipped = "http processors write through their service, not into a scratch table"
        return result
    dataset, name = check_table_name(proc.target)
    scratch = TableSchema(f"{dataset}._validate_{name}_{uuid.uuid4().hex[:10]}", proc.columns, proc.partition)
    labels = {"run_id": "validate", "task_id": f"spot-{name}", "processor": proc.name}
    warehouse.create_table(scratch)
    try:
        kind_of(proc).write(Invocation(proc, scratch, [day], warehouse, "validate", f"spot:{proc.name}@{day}", 1,
                                       dict(proc.options), labels))
        cols = ", ".join(c.name for c in proc.columns)
        where = f"WHERE {proc.partition} = @day"
        stored = warehouse.query(f"SELECT {cols} FROM {proc.target} {where}", {"day": day})
        fresh = warehouse.query(f"SELECT {cols} FROM {scratch.name} {where}", {"day": day})
    finally:
        warehouse.execute(f"DROP TABLE IF EXISTS {scratch.name}")
    result.stored, result.recomputed = len(stored), len(fresh)
    _compare(result, stored, fresh, proc.key or tuple(c.name for c in proc.columns))
    return result


def _compare(result: SpotCheck, stored: Sequence[Mapping[str, Any]], fresh: Sequence[Mapping[str, Any]],
             key: Sequence[str]) -> None:
    def by_key(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], list[Mapping[str, Any]]]:
        out: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
        for r in rows:
            out[tuple(r[k] for k in key)].append(r)
        return out

    have, want = by_key(stored), by_key(fresh)
    for k in sorted(set(have) | set(want), key=repr):
        label = "(" + ", ".join(str(v) for v in k) + ")"
        a, b = have.get(k, []), want.get(k, [])
        if len(a) != len(b):
            result.different_rows += abs(len(a) - len(b)) or 1
            what = "missing from the stored table" if len(a) < len(b) else "stored but not recomputed"
            result.differences.append(f"key {label}: {abs(len(a) - len(b))} row(s) {what}")
            continue
        for x, y in zip(a, b, strict=True):
            cols = [c for c in x if not _same(x[c], y[c])]
            if cols:
                result.different_rows += 1
                result.differences.append(f"key {label}: " + ", ".join(
                    f"{c} stored {x[c]!r}, recomputed {y[c]!r}" for c in cols[:3]))
    del result.differences[EXAMPLES:]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=_REL_TOLERANCE, abs_tol=_REL_TOLERANCE)
    return bool(a == b)
