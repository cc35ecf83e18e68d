"""Post-write hooks: checks a pipeline declares (`post_write: package.module:function`) that run
after each task's write, so pipeline-specific knowledge (such as a player registry) stays in the
pipeline and out of the generic core.

A hook gets a `PostWrite` and returns a `PostWriteReport` (or None). What it reports is a
warning on the task, never a failure: the rows are already written and correct.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from backfill.errors import SpecError
from backfill.processors.base import load_ref

if TYPE_CHECKING:
    from backfill.spec import Processor
    from backfill.warehouse import Warehouse


@dataclass(frozen=True)
class PostWrite:
    warehouse: Warehouse
    processor: Processor
    dates: Sequence[dt.date]
    run_id: str


@dataclass
class PostWriteReport:
    warnings: list[str] = field(default_factory=list)
    unresolved: int = 0  # names (players, ...) that did not resolve through a registry: a registry gap


Hook = Callable[[PostWrite], "PostWriteReport | None"]


@cache
def load_hook(ref: str) -> Hook:
    """`package.module:function`, imported once per process; a bad reference is a spec error."""
    return load_ref(ref, "post_write hook", SpecError)
