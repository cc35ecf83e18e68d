"""Run-history rows of an in-process `execute_task` result, as the engine's flush writes them."""

from __future__ import annotations

from typing import Any

from backfill.executor import TaskResult
from backfill.planner.model import Task
from backfill.runhistory import RowContext, build_rows
from backfill.spec import PipelineSpec


def rows_of(result: TaskResult, task: Task, run_id: str, spec: PipelineSpec | None = None) -> list[dict[str, Any]]:
    """The rows `backfill.runhistory.build_rows` makes of this result (phase names from `spec` when given)."""
    return build_rows(task, run_id, RowContext.of(spec) if spec is not None else RowContext(), result=result.to_json())
