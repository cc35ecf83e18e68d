"""A finished run's status from its tasks: the one rule `finish`, `status` and `report` share.

- `succeeded`: every task succeeded (or was skipped as already done).
- `partial`: nothing failed in running; some dates hold rows that are short or wrong. That is a
  `partial` task, or a `failed` one whose every failed date failed on a written-row check
  (`ErrorCategory.wrote_rows`: `duplicate_key`, `partial_data`), or a task blocked because such a
  task failed upstream. `gaps` and `validate` name the dates and keys; `retry` reruns them.
- `failed`: anything else that did not end well (a failure in running, a task blocked by one,
  revoked, cancelled or never settled).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from backfill.outcome import ErrorCategory, TaskOutcome
from backfill.state.base import RunStatus, StateStore, TaskStatus


def failed_in_rows(categories: Iterable[object]) -> bool:
    """Every category given is a written-row check (and there is at least one)."""
    found = [ErrorCategory.parse(c) for c in categories]
    return bool(found) and all(c.wrote_rows for c in found)


def result_failed_in_rows(result: Mapping[str, Any] | None) -> bool:
    """A failed task's executor result (JSON): did each of its failed dates fail only a written-row check?"""
    result = result or {}
    by_date = result.get("status_by_date") or {}
    issues = result.get("issues_by_date") or {}
    failed = [d for d, s in by_date.items() if TaskOutcome.parse(s, TaskOutcome.failed) is TaskOutcome.failed]
    if not failed:  # one outcome for the whole task
        return failed_in_rows([result.get("error_category")])
    return failed_in_rows((issues.get(d) or [result.get("error_category")])[0] for d in failed)


def run_verdict(states: Mapping[str, TaskStatus | TaskOutcome | str], in_rows: Iterable[str],
                causes: Mapping[str, str]) -> RunStatus:
    """The status a run ends with. `states`: task id -> its settled status; `in_rows`: the failed
    tasks that failed only written-row checks; `causes`: blocked task id -> the failed task that
    blocked it."""
    in_rows = set(in_rows)
    worst = RunStatus.succeeded
    for task_id, raw in states.items():
        state = TaskStatus(str(raw))
        if state in (TaskStatus.success, TaskStatus.skipped):
            continue
        if (state is TaskStatus.partial or (state is TaskStatus.failed and task_id in in_rows)
                or (state is TaskStatus.blocked and causes.get(task_id) in in_rows)):
            worst = RunStatus.partial
            continue
        return RunStatus.failed
    return worst


def verdict_of(store: StateStore, run_id: str) -> RunStatus:
    """`run_verdict` of a run in run state, as its tasks stand now."""
    states = store.states(run_id)
    failed = [i for i, s in states.items() if s is TaskStatus.failed]
    results = store.results_by_id(run_id, failed) if failed else {}
    in_rows = [i for i in failed if result_failed_in_rows(results.get(i))]
    blocked = [i for i, s in states.items() if s is TaskStatus.blocked]
    causes = store.blocked_by(run_id, blocked) if blocked and in_rows else {}
    return run_verdict(states, in_rows, causes)
