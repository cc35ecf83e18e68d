"""Season gates: `enqueue --gate validate` validates each season before the next one starts.

The users ask (Decision 6, and their lesson of silently degraded Phase 4 rows after Phase 3
failures) whether to check one season before writing the next. With a gate the run writes the
seasons one at a time, in its order (most recent first by default): the pump sends only tasks of
the seasons the gate lets through (`RunRecord.gate_below`, a bound on the ready set's priority
scores, whose season part comes first). When the last task of the gated season settles,
`backfill validate`'s checks run over that season (the run history flushed first); if they
pass, the gate moves on to the next season; if not, the run pauses (`PauseKind.gate`) before
anything of the next season starts, with the failed checks in `status` and in the season's
digest. `retry` after a fix reruns the failed tasks and validates again; `resume` validates
again (after a fix by hand); `resume --accept` goes on without it.

The last season has no gate after it: the run ends, and `backfill validate` is the sign-off as
for any run. Seasons must not depend on a season behind the gate (refused at enqueue): a gate
would wait for work it holds back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from backfill.errors import BadInput
from backfill.planner import Task
from backfill.state import PauseKind, RunRecord, RunStatus, StateStore

if TYPE_CHECKING:
    from backfill.warehouse import Warehouse

log = logging.getLogger(__name__)
GATES = ("validate",)


def season_rank(season: str, order: str) -> int:
    """The season part of a task's priority (lower goes first)."""
    try:
        year = int(season[:4])
    except ValueError:
        year = 0
    return (3000 - year) if order == "recent-first" else year


def order_of(run: RunRecord) -> list[str]:
    return [s for s in run.seasons.split(",") if s]


def arm(record: RunRecord, tasks: Sequence[Task], order: str) -> None:
    """Set a gated run's first gate on the record before it is stored (so the first pump obeys it).

    Refuses (BadInput) a plan in which a task depends on a task of a season behind it.
    """
    seasons = order_of(record)
    index = {s: i for i, s in enumerate(seasons)}
    by_id = {t.id: t for t in tasks}
    for t in tasks:
        for d in t.depends_on:
            up = by_id.get(d)
            if up is not None and index[up.season] > index[t.season]:
                raise BadInput(f"--gate validate: {t.id} ({t.season}) reads {up.id} of {up.season}, a season the "
                               f"gate would hold back", hint="use --order chronological with --gate, or no gate")
    _set(record, seasons, 0, tasks, order)


def _set(record: RunRecord, seasons: list[str], i: int, tasks: Sequence[Task] | Mapping[str, Task],
         order: str) -> None:
    items = list(tasks.values()) if isinstance(tasks, Mapping) else list(tasks)
    if i >= len(seasons) - 1:  # the last season: no gate after it
        record.gate_season, record.gate_below, record.gate_rest = "", None, 0
        return
    record.gate_season = seasons[i]
    record.gate_below = season_rank(seasons[i + 1], order) * 1e9
    behind = set(seasons[i + 1:])
    record.gate_rest = sum(1 for t in items if t.season in behind)


def due(run: RunRecord, open_count: int) -> bool:
    """Cheap pre-check on every settle: the gated season may be complete."""
    return bool(run.gate_season) and open_count <= run.gate_rest


def season_done(store: StateStore, run: RunRecord) -> bool:
    tasks = store.tasks(run.run_id)
    states = store.states(run.run_id)
    return all(states[i].finished for i, t in tasks.items() if t.season == run.gate_season and i in states)


def validate_season(store: StateStore, run: RunRecord, warehouse: Warehouse) -> tuple[bool, str, list[Any]]:
    """`backfill validate` over the gated season's dates and processors. (passed, summary, findings)."""
    from backfill.calendar import Calendar
    from backfill.spec import load_spec
    from backfill.validate.suite import validate

    spec = load_spec(run.pipeline)
    tasks = [t for t in store.tasks(run.run_id).values() if t.season == run.gate_season]
    dates = sorted(d for t in tasks for d in t.dates)
    calendar = Calendar.from_warehouse(warehouse, spec.schedule_table)
    report = validate(spec, warehouse, calendar, sorted({t.processor for t in tasks}), [(dates[0], dates[-1])],
                      [run.gate_season])
    # The gate judges what this run writes: a finding about a processor outside it (a Phase 4
    # coverage criterion while only Phase 3 is written) is for the run that writes that one.
    written = {t.processor for t in tasks}
    findings = [(c.name, f) for c in report.checks if not c.passed for f in c.findings
                if f.processor is None or f.processor in written]
    if not findings:
        return True, f"season {run.gate_season} validated: every check of its processors passed", []
    names = sorted({name for name, _ in findings})
    first = "; ".join(f"{name}: {f.processor + ': ' if f.processor else ''}{f.message}" for name, f in findings[:3])
    return False, f"validation of season {run.gate_season} failed ({', '.join(names)}): {first}", findings


def advance(store: StateStore, run: RunRecord, note: str) -> None:
    """Let the next season through (the caller pumps and sends)."""
    seasons = order_of(run)
    nxt = seasons.index(run.gate_season) + 1 if run.gate_season in seasons else len(seasons)
    _set(run, seasons, nxt, store.tasks(run.run_id), str(run.request.get("order", "recent-first")))
    store.update_run(run.run_id, gate_season=run.gate_season, gate_below="" if run.gate_below is None else
                     repr(run.gate_below), gate_rest=run.gate_rest, gate_report=note)


def close(store: StateStore, run: RunRecord, summary: str, findings: list[Any], at: float) -> None:
    """Pause the run before the next season; `status` shows the reason and the season's digest
    (alerts read `gate_report` from the run record) says it too."""
    store.update_run(run.run_id, gate_report=summary)
    store.pause_run(run.run_id, PauseKind.gate, "gate", summary, at)
    log.warning("run %s: %s; paused before the next season", run.run_id, summary)


def is_gate_paused(run: RunRecord) -> bool:
    return run.status is RunStatus.paused and run.pause_kind == PauseKind.gate.value
