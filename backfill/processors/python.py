"""`python: package.module:function` processors: the users' existing code, called with a context.

The function reads and writes through `ctx.warehouse` (the executor's own connection) and
returns None or the rows it wrote. Its exceptions are classified like SQL errors: our own
warehouse errors keep their category (a quota error is retried), anything else is a final
`processor_error` for the dates it was given.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

from backfill.errors import BackfillError, WarehouseError
from backfill.outcome import ErrorCategory
from backfill.processors.base import Invocation, Reply, load_ref
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema


@dataclass(frozen=True)
class ProcessorContext:
    """What a Python processor is called with."""

    processor: str
    dates: Sequence[dt.date]
    warehouse: Warehouse
    table: TableSchema
    run_id: str
    task_id: str
    attempt: int
    options: Mapping[str, Any]
    log: logging.Logger

    def replace_rows(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write computed rows as this task's partitions, atomically and idempotently."""
        return self.warehouse.replace_partitions_with_rows(self.table, self.dates, rows)

    @property
    def start_date(self) -> dt.date:
        return min(self.dates)

    @property
    def end_date(self) -> dt.date:
        return max(self.dates)


@cache
def load_function(ref: str, base_dir: str = "") -> Callable[[ProcessorContext], Any]:
    """Import `package.module:function`, once per process; a module beside pipeline.yaml is found too."""
    return load_ref(ref, "python processor", partial(WarehouseError, category=ErrorCategory.auth_config), base_dir)


class PythonKind:
    def __init__(self, ref: str, base_dir: Path | None) -> None:
        self.ref = ref
        self.base_dir = str(base_dir or "")

    def write(self, inv: Invocation) -> Reply:
        fn = load_function(self.ref, self.base_dir)
        ctx = ProcessorContext(inv.processor.name, tuple(inv.dates), inv.warehouse, inv.table, inv.run_id,
                               inv.task_id, inv.attempt, dict(inv.options), inv.log)
        try:
            out = fn(ctx)
        except BackfillError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's code: any error is this write's final failure
            raise WarehouseError(f"{self.ref}: {type(exc).__name__}: {exc}",
                                 category=ErrorCategory.processor_error) from exc
        if out is not None and (isinstance(out, bool) or not isinstance(out, int)):
            return Reply(warnings=[f"{self.ref} returned {type(out).__name__}, expected None or rows written"])
        return Reply(rows_claimed=out)
