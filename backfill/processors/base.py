"""The interface every processor kind implements, and the choice of kind for a processor."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from backfill.errors import BackfillError
    from backfill.settings import Settings
    from backfill.spec import Processor
    from backfill.warehouse import Warehouse
    from backfill.warehouse.schema import TableSchema


@dataclass(frozen=True)
class Invocation:
    """One write of some dates of one task: everything a kind needs, nothing it must look up."""

    processor: Processor
    table: TableSchema
    dates: Sequence[dt.date]
    warehouse: Warehouse
    run_id: str
    task_id: str
    attempt: int
    options: Mapping[str, Any]
    labels: Mapping[str, str]
    settings: Settings | None = None
    # The earliest upstream partition any window of these dates reads (None: a year back).
    # SQL filters its upstream tables on it, so BigQuery prunes to the window's partitions.
    window_start: dt.date | None = None

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"backfill.processor.{self.processor.name}")


@dataclass
class Reply:
    """What a kind reports besides the rows (which the executor counts in the warehouse itself)."""

    rows_claimed: int | None = None
    warnings: list[str] = field(default_factory=list)


class Kind(Protocol):
    """Writes the invocation's dates. Raises TransientWarehouseError (retried by the engine) or
    WarehouseError (final; the executor bisects a multi-date batch) and nothing else."""

    def write(self, inv: Invocation) -> Reply: ...


def load_ref(ref: str, what: str, error: Callable[..., BackfillError], base_dir: str = "") -> Callable[..., Any]:
    """Import the function a `package.module:function` reference names (`what` says what it is for, as in
    "python processor"); a module beside pipeline.yaml is found too when `base_dir` is given. A reference
    that does not load is raised as `error(message, hint=...)`."""
    module, _, name = ref.partition(":")
    if base_dir and base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise error(f"{what} {ref!r} cannot be loaded: {exc}",
                    hint="check the module path in pipeline.yaml and that the package is installed") from exc
    if not callable(fn):
        raise error(f"{what} {ref!r} is not a function")
    return fn  # type: ignore[no-any-return]


def parse_option(value: str) -> Any:
    """`true`/`false` -> bool, whole numbers -> int, numbers -> float, anything else stays text."""
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
