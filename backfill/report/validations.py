"""The validation ledger: every `backfill validate` outcome, kept beside the run history.

`validate` prints its verdict and is gone; the execution log must still say, weeks later,
whether the range it reports was validated, when, with which seed and with what result. So
each validation appends one row to `<dataset>.backfill_validations` in the warehouse (the
durable store the run ledger and run history already live in), and `backfill report` reads
the ones whose ranges touch its runs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema, schema


def validations_table(history_table: str) -> str:
    return f"{history_table.split('.')[0]}.backfill_validations"


def _schema(history_table: str) -> TableSchema:
    return schema(validations_table(history_table), None,
                  ("validated_at", "TIMESTAMP", True), ("pipeline", "STRING"), ("ranges", "JSON"),
                  ("processors", "JSON"), ("seasons", "JSON"), ("passed", "BOOL"), ("seed", "INT64"),
                  ("findings", "INT64"), ("checks", "JSON"))


@dataclass(frozen=True)
class Validation:
    """One recorded `validate` outcome (the checks summarised: name, title, passed, findings, figures)."""

    validated_at: dt.datetime
    pipeline: str
    ranges: tuple[tuple[dt.date, dt.date], ...]
    processors: tuple[str, ...]
    seasons: tuple[str, ...]
    passed: bool
    seed: int
    findings: int
    checks: tuple[dict[str, Any], ...]

    def covers(self, ranges: Sequence[tuple[dt.date, dt.date]]) -> bool:
        """Every date of `ranges` lies inside one of this validation's ranges."""
        return all(any(a <= lo and hi <= b for a, b in self.ranges) for lo, hi in ranges)

    def touches(self, ranges: Sequence[tuple[dt.date, dt.date]]) -> bool:
        return any(a <= hi and lo <= b for a, b in self.ranges for lo, hi in ranges)

    def to_json(self) -> dict[str, Any]:
        return {"validated_at": self.validated_at.isoformat(timespec="seconds"), "pipeline": self.pipeline,
                "ranges": [[a.isoformat(), b.isoformat()] for a, b in self.ranges],
                "processors": list(self.processors), "seasons": list(self.seasons), "passed": self.passed,
                "seed": self.seed, "findings": self.findings, "checks": list(self.checks)}


def record_validation(warehouse: Warehouse, history_table: str, report: Any) -> None:
    """Append a `backfill.validate.suite.Report` to the ledger (creating the table on first use)."""
    table = _schema(history_table)
    warehouse.create_table(table)
    checks = [{"name": c.name, "title": c.title, "passed": c.passed, "findings": len(c.findings),
               "figures": list(c.figures)[:6]} for c in report.checks]
    warehouse.insert_rows(table.name, [{
        "validated_at": dt.datetime.now(dt.UTC), "pipeline": report.pipeline,
        "ranges": json.dumps([[a.isoformat(), b.isoformat()] for a, b in report.ranges]),
        "processors": json.dumps(list(report.processors)), "seasons": json.dumps(list(report.seasons)),
        "passed": bool(report.passed), "seed": int(report.seed),
        "findings": sum(len(c.findings) for c in report.checks), "checks": json.dumps(checks)}])


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def load_validations(warehouse: Warehouse, history_table: str) -> list[Validation]:
    """Every recorded validation, oldest first (none when `validate` never ran on this warehouse)."""
    table = validations_table(history_table)
    if not warehouse.table_exists(table):
        return []
    out: list[Validation] = []
    for r in warehouse.query(f"SELECT * FROM {table} ORDER BY validated_at"):
        at = r["validated_at"]
        if isinstance(at, dt.datetime) and at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        out.append(Validation(
            validated_at=at, pipeline=str(r["pipeline"] or ""),
            ranges=tuple((dt.date.fromisoformat(a), dt.date.fromisoformat(b)) for a, b in _json(r["ranges"]) or []),
            processors=tuple(_json(r["processors"]) or []), seasons=tuple(_json(r["seasons"]) or []),
            passed=bool(r["passed"]), seed=int(r["seed"] or 0), findings=int(r["findings"] or 0),
            checks=tuple(_json(r["checks"]) or [])))
    return out
