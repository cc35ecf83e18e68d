"""Which kind writes a processor's partitions: the one place that knows all three kinds.

It sits above `base` (the interface) and the kinds (`sql`, `python`, `http`) that implement it,
so the interface never imports its implementations and the package has no import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill.processors.base import Kind
from backfill.processors.http import HttpKind
from backfill.processors.python import PythonKind
from backfill.processors.sql import SqlKind

if TYPE_CHECKING:
    from backfill.spec import Processor


def kind_of(processor: Processor) -> Kind:
    """`http:` and `python:` when the spec names them, else the processor's SQL."""
    if processor.http is not None:
        return HttpKind(processor.http)
    if processor.python is not None:
        return PythonKind(processor.python, processor.base_dir)
    return SqlKind(processor.sql_text())
