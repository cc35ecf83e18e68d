"""Preflight from the command line: `enqueue` always runs it, `plan --preflight` on request."""

from __future__ import annotations

from rich.console import Console

from backfill.calendar import Calendar
from backfill.checks import Problem, preflight
from backfill.errors import BadInput
from backfill.planner import PlanRequest
from backfill.runhistory import RunHistory
from backfill.spec import PipelineSpec
from backfill.warehouse import Warehouse


def check_request(spec: PipelineSpec, warehouse: Warehouse, request: PlanRequest,
                  calendar: Calendar | None = None) -> list[Problem]:
    """Every problem with the selection's tables, columns and schedule (see `backfill.checks.preflight`);
    `calendar`: the schedule already read (else read here)."""
    calendar = calendar if calendar is not None else Calendar.from_warehouse(warehouse, spec.schedule_table)
    names = spec.select(set(request.phases) if request.phases else None,
                        set(request.processors) if request.processors else None)
    problems = preflight(spec, warehouse, calendar, names, request.ranges, request.seasons)
    # The run history is written at the first flush; a column of the users' table that cannot
    # hold what it writes must stop the run here, with nothing written, not fail every flush.
    return problems + [Problem("run_history", m) for m in RunHistory.of(warehouse, spec).problems()]


def refuse_on_problems(problems: list[Problem], console: Console, action: str = "nothing was enqueued") -> None:
    """Print every problem (one line each), then fail with exit 2: nothing is half-started."""
    if not problems:
        return
    if len(problems) == 1:  # one problem: one line, the problem itself
        raise BadInput(f"preflight {problems[0].kind}: {problems[0].message}; {action}",
                       hint="fix it, then run the command again")
    for p in problems:
        console.print(f"[red]preflight[/red] {p.kind}: {p.message}", highlight=False, soft_wrap=True)
    raise BadInput(f"preflight found {len(problems)} problem(s); {action}",
                   hint="fix the tables or the selection listed above, then run the command again")
