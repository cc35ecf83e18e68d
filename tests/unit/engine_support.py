"""What the engine's unit tests share: a broker, a worker and trigger pauses, all in this process.

None of them mocks Celery: `RecordingDispatcher` is a real implementation of the engine's
`Dispatcher` protocol (a priority queue of messages, as the Redis broker keeps them), and
`InProcessWorker` does for each message what `workers.tasks.run_task` does: begin the task in
run state, produce an outcome, settle it through the engine. Outcomes come from the test, so a
run fails, halves or revokes exactly where the test says.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backfill import engine
from backfill.calendar import Calendar
from backfill.engine.events import Observers
from backfill.engine.history import HistoryFlusher
from backfill.executor import TaskResult
from backfill.planner import Plan, PlanRequest, Task, build_plan
from backfill.settings import Settings
from backfill.spec import PipelineSpec
from backfill.state import BeginDecision, RunRecord, StateStore, TaskStatus, base
from tests.unit.planner_support import league, processor, spec_from

D = dt.date
SEASONS = ("2021-22", "2022-23", "2023-24")
# The first days of each season: games -> form (same date) -> trend (the two game dates before).
FIRST_DAYS = tuple((D(int(s[:4]), 10, 20), D(int(s[:4]), 10, 25)) for s in SEASONS)
COLUMNS = {"game_date": {"type": "DATE", "required": True}}
Outcome = Callable[[Task, int], dict[str, Any]]


def small_spec(tmp_path: Path) -> PipelineSpec:
    return spec_from(tmp_path, processor("games", columns=COLUMNS),
                     processor("form", depends_on={"games": "same_date"}, columns=COLUMNS),
                     processor("trend", depends_on={"form": {"game_dates": 2}}, columns=COLUMNS))


def small_calendar() -> Calendar:
    return Calendar.from_rows(league(SEASONS))


def small_plan(tmp_path: Path, *, ranges: tuple[tuple[dt.date, dt.date], ...] = FIRST_DAYS, batch: int = 1,
               order: str = "recent-first") -> Plan:
    """About 13 tasks per season in 3 waves, one date each unless `batch` says more."""
    return build_plan(small_spec(tmp_path), small_calendar(), PlanRequest(ranges=ranges, batch=batch, order=order))


def result(task: Task, attempt: int, status: str = "success", *, by_date: Mapping[dt.date, str] | None = None,
           category: str | None = None, message: str | None = None) -> dict[str, Any]:
    """What the executor returns for one attempt (`TaskResult` as JSON, as a worker hands it to settle)."""
    moment = dt.datetime.now(dt.UTC)
    return TaskResult(task_id=task.id, processor=task.processor, phase=task.phase, season=task.season,
                      dates=task.dates, status=status, rows=len(task.dates), rows_by_date={d: 1 for d in task.dates},
                      started_at=moment, finished_at=moment, error_category=category, error_message=message,
                      attempt=attempt, status_by_date=dict(by_date or {})).to_json()


def fails(category: str = "processor_error", message: str = "boom") -> Outcome:
    return lambda task, attempt: result(task, attempt, "failed", category=category, message=message)


def partial(task: Task, attempt: int) -> dict[str, Any]:
    return result(task, attempt, "partial", category="row_count", message="fewer rows than expected")


@dataclass(frozen=True)
class Message:
    id: str
    run_id: str
    task_id: str
    priority: int


@dataclass
class RecordingDispatcher:
    """The broker as the engine sees it: sends queue messages, revokes are remembered; `purge` loses them."""

    queue: list[Message] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def send(self, run_id: str, task_ids: Sequence[str], priorities: Sequence[int] | None = None) -> list[str]:
        levels = list(priorities) if priorities is not None else [0] * len(task_ids)
        out = [Message(f"{run_id}|{t}|{next(self._ids)}", run_id, t, p) for t, p in zip(task_ids, levels, strict=True)]
        self.queue += out
        self.sent += out
        return [m.id for m in out]

    def revoke(self, queued_ids: Sequence[str]) -> None:
        self.revoked += queued_ids

    def purge(self) -> int:
        lost = len(self.queue)
        self.queue.clear()
        return lost

    def take(self) -> Message | None:
        """The next message a worker gets: the lowest priority number first, then oldest first."""
        if not self.queue:
            return None
        best = min(range(len(self.queue)), key=lambda i: (self.queue[i].priority, i))
        return self.queue.pop(best)

    def sent_ids(self) -> list[str]:
        return [m.task_id for m in self.sent]


@dataclass
class RecordingTriggers:
    """The engine's TriggerPauser in memory: which run holds which trigger paused."""

    held: dict[str, set[str]] = field(default_factory=dict)

    def pause(self, name: str, holder: str, ttl_seconds: float, reason: str = "") -> None:
        self.held.setdefault(name, set()).add(holder)

    def renew(self, name: str, holder: str, ttl_seconds: float) -> bool:
        return holder in self.held.get(name, set())

    def release(self, name: str, holder: str) -> bool:
        holders = self.held.get(name, set())
        found = holder in holders
        holders.discard(holder)
        return found

    def paused(self) -> set[str]:
        return {name for name, holders in self.held.items() if holders}


@dataclass
class InProcessWorker:
    """Takes messages and does what a worker's `run_task` does with them, one at a time."""

    store: StateStore
    dispatcher: RecordingDispatcher
    settings: Settings
    warehouse: engine.WarehouseSource = lambda: None
    triggers: RecordingTriggers | None = None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    holder: str = "test:1"
    log: list[tuple[str, str]] = field(default_factory=list)  # (begin|settle|skip:<decision>, task id) in order

    def begin(self) -> tuple[Message, int, Task] | None:
        """Take one message and begin its task, leaving it running (a worker that dies here never settles)."""
        while (message := self.dispatcher.take()) is not None:
            begin = self.store.begin_task(message.run_id, message.task_id, self.holder, self.settings.lease_ttl)
            if begin.decision is BeginDecision.run and begin.task is not None:
                self.log.append(("begin", message.task_id))
                return message, begin.attempt, begin.task
            self.log.append((f"skip:{begin.decision.value}", message.task_id))
        return None

    def finish(self, message: Message, attempt: int, task: Task) -> str:
        out = self.outcomes.get(task.id, lambda t, a: result(t, a))(task, attempt)
        status = TaskStatus.succeeded if out["status"] in ("success", "partial") else TaskStatus.failed
        done = engine.settle(self.store, self.dispatcher, message.run_id, task.id, attempt, status, out,
                             settings=self.settings, warehouse=self.warehouse, triggers=self.triggers, task=task,
                             observers=Observers([HistoryFlusher(self.settings)]))
        self.log.append(("settle", task.id))
        return done.outcome

    def drain(self, limit: int = 10_000) -> int:
        """Run messages until the queue is empty; returns how many tasks ran."""
        ran = 0
        while ran < limit and (begun := self.begin()) is not None:
            self.finish(*begun)
            ran += 1
        return ran

    def began(self) -> list[str]:
        return [t for kind, t in self.log if kind == "begin"]


def new_record(plan: Plan, run_id: str = "bf-test", pipeline: str = "-", **fields: Any) -> RunRecord:
    """A run record created now, by the test's clock when it has one (the `clock` fixture)."""
    fields.setdefault("created_at", base.now())
    return RunRecord(run_id=run_id, pipeline=pipeline, request=plan.request.to_json(), **fields)
