"""Run one planned task against a warehouse and say exactly what happened, as data.

The Celery engine wraps `execute_task`; tests and the benchmark call it directly. Before a task
writes, the defensive check (`backfill.checks`) looks at every upstream partition inside its
windows; in strict mode a date with a gap fails before anything is written. A task's write is
one `replace_partitions` call per batch, atomic and idempotent; a batch that fails is bisected
down to single dates, so one bad date fails alone. After the write, each date's rows are held
against what the processor declares to expect (`expect:` in the spec) and the raw data against
the schedule, per game and per team: a status says what was written, never more.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from backfill.calendar import Calendar, as_date
from backfill.categories import CATEGORIES, CRITICAL, category_of
from backfill.checks import DateCheck, Emptiness, UpstreamCheck, describe_gaps, gap_fix
from backfill.errors import BackfillError, QuotaExceeded, TransientWarehouseError, WarehouseError
from backfill.fingerprint import code_version
from backfill.hooks import PostWrite, load_hook
from backfill.keys import describe_duplicates, partition_figures_sql
from backfill.outcome import ErrorCategory, TaskOutcome
from backfill.planner.model import Task
from backfill.processors import Invocation, Kind, kind_of
from backfill.settings import Settings
from backfill.spec import PipelineSpec, Processor
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema

ERROR_CATEGORIES = CATEGORIES  # the one classification (backfill.categories): history, status, alerts
TASK_STATUSES = (TaskOutcome.success, TaskOutcome.partial, TaskOutcome.failed)  # what an attempt can end as
# Categories that no date can fix on its own: bisecting would only repeat the same failure.
_NOT_DATE_SPECIFIC = (CRITICAL,)


@dataclass
class TaskResult:
    """The outcome of one attempt of one task; JSON round-trips so it can cross process boundaries.

    `status` is the worst of the dates: `failed` if any date failed, else `partial` if any date
    is partial. `status_by_date` and `issues_by_date` say what happened to each date, so a batch
    whose bisection isolated one bad date still records the others as written.
    """

    task_id: str
    processor: str
    phase: int
    season: str
    dates: tuple[dt.date, ...]
    status: TaskOutcome
    rows: int = 0
    rows_by_date: dict[dt.date, int] = field(default_factory=dict)
    duration_seconds: float = 0.0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    error_category: str | None = None
    error_message: str | None = None
    warnings: list[str] = field(default_factory=list)
    unresolved_players: int = 0
    attempt: int = 1
    status_by_date: dict[dt.date, TaskOutcome] = field(default_factory=dict)
    issues_by_date: dict[dt.date, list[str]] = field(default_factory=dict)  # [category, message]
    code_version: str | None = None  # the processor's code fingerprint (backfill.fingerprint)
    options: dict[str, Any] | None = None  # what the processor was sent (spec block, its own, the run's)
    # date -> the defensive check's verdict: {passed, missing: [partitions], upstream: [{processor, present, needed}]}
    checks_by_date: dict[dt.date, dict[str, Any]] = field(default_factory=dict)
    execution_host: str | None = None

    def __post_init__(self) -> None:
        """Outcomes given as their strings (stored results, callers) become the enum."""
        self.status = TaskOutcome(self.status)
        self.status_by_date = {d: TaskOutcome(v) for d, v in self.status_by_date.items()}

    @property
    def ok(self) -> bool:
        return self.status.wrote

    def date_status(self, d: dt.date) -> TaskOutcome:
        return self.status_by_date.get(d, self.status)

    def date_issue(self, d: dt.date) -> tuple[str | None, str | None]:
        issue = self.issues_by_date.get(d)
        if issue:
            return issue[0], issue[1]
        if self.date_status(d) is TaskOutcome.success:
            return None, None
        return self.error_category, self.error_message

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dates"] = [d.isoformat() for d in self.dates]
        for k in ("rows_by_date", "status_by_date", "issues_by_date", "checks_by_date"):
            data[k] = {d.isoformat(): v for d, v in getattr(self, k).items()}
        for k in ("started_at", "finished_at"):
            value = getattr(self, k)
            data[k] = value.isoformat() if value is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskResult:
        def when(v: Any) -> dt.datetime | None:
            return dt.datetime.fromisoformat(v) if v else None

        def by_date(key: str) -> dict[dt.date, Any]:
            return {dt.date.fromisoformat(k): v for k, v in (data.get(key) or {}).items()}

        return cls(
            task_id=data["task_id"], processor=data["processor"], phase=int(data["phase"]), season=data["season"],
            dates=tuple(dt.date.fromisoformat(d) for d in data["dates"]), status=TaskOutcome(data["status"]),
            rows=int(data.get("rows", 0)),
            rows_by_date={k: int(v) for k, v in by_date("rows_by_date").items()},
            duration_seconds=float(data.get("duration_seconds", 0.0)), started_at=when(data.get("started_at")),
            finished_at=when(data.get("finished_at")), error_category=data.get("error_category"),
            error_message=data.get("error_message"), warnings=list(data.get("warnings") or []),
            unresolved_players=int(data.get("unresolved_players", 0)), attempt=int(data.get("attempt", 1)),
            status_by_date={k: TaskOutcome(v) for k, v in by_date("status_by_date").items()},
            issues_by_date={k: list(v) for k, v in by_date("issues_by_date").items()},
            code_version=data.get("code_version"), options=data.get("options"),
            checks_by_date={k: dict(v) for k, v in by_date("checks_by_date").items()},
            execution_host=data.get("execution_host"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Failed(Exception):
    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category
        self.message = message


class _Outcome:
    """Per-date verdicts as they accumulate; a date's status only ever gets worse."""

    def __init__(self, dates: Sequence[dt.date]) -> None:
        self.status = {d: TaskOutcome.success for d in dates}
        self.issue: dict[dt.date, list[str]] = {}
        self.notes: list[str] = []  # every finding, in order, for the task's warnings

    def mark(self, d: dt.date, status: TaskOutcome, category: ErrorCategory, message: str) -> None:
        self.notes.append(f"{d}: {category}: {message}")
        if status.rank > self.status[d].rank:
            self.status[d] = status
            self.issue[d] = [category, message]
        elif d not in self.issue and status is not TaskOutcome.success:
            self.issue[d] = [category, message]

    def apply(self, result: TaskResult) -> None:
        result.status_by_date = dict(self.status)
        result.issues_by_date = dict(self.issue)
        worst = max(self.status.values(), key=lambda s: s.rank, default=TaskOutcome.success)
        result.status = worst
        if worst is not TaskOutcome.success:
            firsts = [(d, self.issue[d]) for d in sorted(self.issue) if self.status[d] == worst]
            d0, (category, message) = firsts[0]
            result.error_category = category
            more = f" (and {len(firsts) - 1} more date(s))" if len(firsts) > 1 else ""
            result.error_message = (message if len(self.status) == 1 else f"{d0}: {message}") + more


def execute_task(task: Task, warehouse: Warehouse, spec: PipelineSpec, *, run_id: str = "adhoc",
                 attempt: int = 1, raise_transient: bool = True, check: UpstreamCheck | None = None,
                 strict: bool = True, calendar: Calendar | None = None, options: Mapping[str, Any] | None = None,
                 settings: Settings | None = None) -> TaskResult:
    """Check the upstream windows, replace the task's partitions, and report per date what was written.

    Final failures are *returned* (status `failed`, with a category), never raised, so one bad
    date cannot fail a whole run. Transient and quota errors are re-raised (`raise_transient`,
    the default) so the engine can retry with backoff, or returned as `transient` / `quota`.
    `check` (the engine always passes one) enforces the upstream windows: strict, a date with a
    gap fails `dependency_gap` before writing; not strict, it runs and is `partial` with its
    coverage. Without `check` the caller vouches that upstreams ran (in-process tests, benchmarks).
    After the write: 0 rows on a date with games is `empty_output` (failed when strict, partial
    otherwise) unless the schedule says the date's inputs are empty; fewer rows than `expect:`
    declares, NULLs in required columns, or raw data missing a scheduled game or team are
    `partial`. Post-write hooks (registry gaps) add warnings and counts, never failures.
    Every processor kind (`sql:`, `python:`, `http:`) gets the same checks and the same options:
    the spec's `backfill_options`, then its own `options:`, then the run's `options` (`--option`),
    recorded on the result so the run history says what was sent; `settings` carries HTTP auth.
    """
    # A DuckDB warehouse opened without `hold` (a worker sharing the file with the CLI) opens and
    # closes the file around every query, and each close checkpoints: held for the whole task, a
    # task's dozen queries cost one open instead of a dozen (0.5 s -> 0.07 s per small task).
    session = getattr(warehouse, "session", None)
    # Not for an HTTP processor: its service writes the same warehouse while the call is out, and a
    # DuckDB file held by the worker for the whole task would lock that service out until it timed out.
    proc = spec.processors.get(task.processor)
    hold = callable(session) and (proc is None or proc.kind != "http")
    with session() if hold and callable(session) else nullcontext():
        return _execute_task(task, warehouse, spec, run_id=run_id, attempt=attempt, raise_transient=raise_transient,
                             check=check, strict=strict, calendar=calendar, options=options, settings=settings)


def _execute_task(task: Task, warehouse: Warehouse, spec: PipelineSpec, *, run_id: str, attempt: int,
                  raise_transient: bool, check: UpstreamCheck | None, strict: bool, calendar: Calendar | None,
                  options: Mapping[str, Any] | None, settings: Settings | None) -> TaskResult:
    started = _now()
    clock = time.monotonic()
    result = TaskResult(task.id, task.processor, task.phase, task.season, tuple(task.dates), TaskOutcome.success,
                        started_at=started, attempt=attempt, execution_host=socket.gethostname())
    outcome = _Outcome(task.dates)
    try:
        proc, table = _prepare(task, spec)
        result.code_version = code_version(proc)
        try:
            kind = kind_of(proc)
        except WarehouseError as exc:
            raise _Failed(exc.category, exc.message) from exc
        _ensure_tables(warehouse, spec, proc, table)
        cal = calendar or (check.calendar if check is not None else Calendar.from_warehouse(warehouse,
                                                                                              spec.schedule_table))
        verdicts = check.check(proc.name, task.dates) if check is not None else {}
        result.checks_by_date = {d: _check_record(v) for d, v in verdicts.items()}
        todo = _apply_checks(result, outcome, verdicts, strict)
        labels = {"run_id": run_id, "task_id": task.id, "processor": task.processor}
        result.options = spec.options_for(proc.name, options)
        base = Invocation(proc, table, todo, warehouse, run_id, task.id, attempt, result.options, labels, settings,
                          window_start=window_start(cal, proc, todo) if todo else None)
        if todo:
            _write_bisecting(kind, base, todo, outcome, result)
        written = [d for d in todo if outcome.status[d] is not TaskOutcome.failed]
        if written:
            try:
                _inspect(result, outcome, task, warehouse, spec, proc, table, cal, verdicts, written, strict,
                         run_id)
            except TransientWarehouseError:
                raise
            except Exception as exc:  # noqa: BLE001 - the write succeeded; a failed check is only a warning
                result.warnings.append(f"post-write checks failed: {type(exc).__name__}: {exc}")
        outcome.apply(result)
        result.warnings.extend(n for n in outcome.notes if n not in result.warnings)
    except TransientWarehouseError as exc:
        if raise_transient:
            raise
        _fail_all(result, ErrorCategory.quota if isinstance(exc, QuotaExceeded) else exc.category, exc.message)
    except _Failed as exc:
        _fail_all(result, exc.category, exc.message)
    except Exception as exc:  # noqa: BLE001 - a final failure is data, whatever raised it
        _fail_all(result, ErrorCategory.processor_error, f"{type(exc).__name__}: {exc}")
    result.finished_at = _now()
    result.duration_seconds = round(time.monotonic() - clock, 4)
    return result


def window_start(cal: Calendar, proc: Processor, dates: Sequence[dt.date]) -> dt.date:
    """The earliest upstream partition that any window of `dates` reads (never after the first date).

    Every processor's SQL gets it as `@window_start` and filters its upstream tables' partition
    column with it, so a task scans its window rather than a fixed year of history (on
    BigQuery, partition pruning: bytes billed, and time, follow the window). A bisected
    sub-batch keeps its batch's value: a superset of its own windows, so still correct.
    """
    first = min(dates)
    reads = [r for dep in proc.depends_on for d in dates for r in cal.resolve(dep.window, d).dates]
    return min([first, *reads])


def _check_record(v: DateCheck) -> dict[str, Any]:
    """The defensive check of one date as the run history records it (their dependency columns)."""
    return {"passed": not v.gaps, "missing": [str(g) for g in v.gaps],
            "upstream": [{"processor": src, "present": have, "needed": need}
                         for src, (have, need) in sorted(v.coverage.items())]}


def _fail_all(result: TaskResult, category: str, message: str) -> None:
    result.status = TaskOutcome.failed
    result.error_category = category_of(category, message)
    result.error_message = message
    result.status_by_date = {d: TaskOutcome.failed for d in result.dates}
    result.issues_by_date = {}


def _apply_checks(result: TaskResult, outcome: _Outcome, verdicts: Mapping[dt.date, DateCheck],
                  strict: bool) -> list[dt.date]:
    """Dates that may be written: strict drops every date with an upstream gap (failed, nothing written)."""
    todo: list[dt.date] = []
    for d in result.dates:
        v = verdicts.get(d)
        if v is None or not v.gaps:
            todo.append(d)
            continue
        if strict:
            outcome.mark(d, TaskOutcome.failed, ErrorCategory.dependency_gap,
                         f"upstream partitions missing: {describe_gaps(v.gaps)}; {gap_fix(v.gaps)}")
        else:
            coverage = v.describe_coverage()
            outcome.mark(d, TaskOutcome.partial, ErrorCategory.dependency_gap,
                         f"ran with incomplete upstream windows (--no-strict): {coverage}; "
                         f"missing {describe_gaps(v.gaps)}")
            todo.append(d)
    return todo


def _write_bisecting(kind: Kind, base: Invocation, dates: list[dt.date], outcome: _Outcome,
                     result: TaskResult) -> None:
    """One write for the whole batch; on a final failure, halves, down to single dates.

    Transient errors propagate (the engine retries the task); only final ones are bisected, so
    a bad date costs about 2 log2(n) extra writes and fails alone, the rest are written.
    """
    try:
        reply = kind.write(replace(base, dates=dates))
        result.warnings.extend(reply.warnings)
    except TransientWarehouseError:
        raise
    except WarehouseError as exc:
        category = category_of(exc.category, exc.message)  # auth_config, access denied ... -> critical
        if len(dates) == 1 or category in _NOT_DATE_SPECIFIC:
            where = base.processor.sql if base.processor.kind == "sql" else base.processor.kind
            for d in dates:
                outcome.mark(d, TaskOutcome.failed, category, f"{where}: {exc.message}")
            return
        mid = len(dates) // 2
        _write_bisecting(kind, base, dates[:mid], outcome, result)
        _write_bisecting(kind, base, dates[mid:], outcome, result)


def _prepare(task: Task, spec: PipelineSpec) -> tuple[Processor, TableSchema]:
    proc = spec.processors.get(task.processor)
    if proc is None:
        raise _Failed(ErrorCategory.auth_config, f"processor {task.processor} is not in pipeline {spec.name}")
    if not task.dates:
        raise _Failed(ErrorCategory.processor_error, f"task {task.id} has no dates")
    try:
        table = proc.table
    except BackfillError as exc:
        raise _Failed(ErrorCategory.auth_config, exc.message) from exc
    return proc, table


def _ensure_tables(warehouse: Warehouse, spec: PipelineSpec, proc: Processor, table: TableSchema) -> None:
    """Create the target and upstream tables up front, retrying: creation is idempotent, yet two
    threads creating the same dataset at once can conflict, and that must not fail a task.

    An upstream that never ran yet has no table; its SQL must still find it (empty), and the
    defensive check, not a missing-table error, says what is missing.
    """
    tables = [table] + [spec.processors[d.source].table for d in proc.upstream_processors
                        if spec.processors[d.source].columns]
    for t in tables:
        for attempt in range(5):
            try:
                warehouse.create_table(t)
                break
            except Exception:
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))


def _inspect(result: TaskResult, outcome: _Outcome, task: Task, warehouse: Warehouse, spec: PipelineSpec,
             proc: Processor, table: TableSchema, cal: Calendar, verdicts: Mapping[dt.date, DateCheck],
             dates: list[dt.date], strict: bool, run_id: str) -> None:
    """Rows per date against what the processor expects, NULLs, raw coverage per game and team, hooks."""
    required = sorted(set(proc.required_columns) | {c.name for c in table.columns if c.required})
    rows = warehouse.query(partition_figures_sql(table.name, proc.partition, proc.key,
                                                 {f"null_{c}": f"{c} IS NULL" for c in required},
                                                 f"{table.partition} IN UNNEST(@dates)"),
                           {"dates": sorted(result.dates)})
    by_date = {as_date(r["d"]): r for r in rows}
    result.rows_by_date = {d: int(by_date[d]["n"]) if d in by_date else 0 for d in result.dates}
    result.rows = sum(result.rows_by_date.values())
    for d in dates:
        for c in required:
            missing = int((by_date.get(d) or {}).get(f"null_{c}") or 0)
            if missing:
                outcome.mark(d, TaskOutcome.partial, ErrorCategory.partial_data,
                             f"{table.name}.{c}: {missing} NULL value(s) in a required column")
        _mark_duplicates(outcome, d, by_date.get(d), table.name, proc.key)
    emptiness = Emptiness(spec, cal)
    # Bootstrap dates of lookback processors may have few or no rows: expectations start after.
    settled = [d for d in dates if not emptiness.may_be_empty(proc.name, d)]
    for d in sorted(set(dates) - set(settled)):
        if result.rows_by_date[d] == 0 and cal.games_on(d):
            result.warnings.append(f"{d}: bootstrap: 0 rows in the season's first {spec.bootstrap_days} days "
                                   "(its lookback windows hold no games yet)")
    for d in settled:
        games = cal.games_on(d)
        if result.rows_by_date[d] == 0 and games:
            outcome.mark(d, TaskOutcome.failed if strict else TaskOutcome.partial, ErrorCategory.empty_output,
                         f"0 rows written on a date with {len(games)} game(s)")
    for message, d in _partial_raw(warehouse, spec, proc, cal, dates):
        outcome.mark(d, TaskOutcome.partial, ErrorCategory.partial_data, message)
    _check_expectations(outcome, warehouse, spec, proc, table, cal, settled, result.rows_by_date)
    for ref in spec.post_write:
        report = load_hook(ref)(PostWrite(warehouse, proc, dates, run_id))
        if report is not None:
            result.warnings.extend(report.warnings)
            result.unresolved_players += report.unresolved


def _mark_duplicates(outcome: _Outcome, d: dt.date, figures: Mapping[str, Any] | None, table: str,
                     key: Sequence[str]) -> None:
    """A date whose written rows repeat a declared key failed, whatever else it holds: counted twice
    is worse than missing, because nothing downstream can tell."""
    found = figures or {}
    dups = int(found.get("dup_keys") or 0)
    if dups:
        outcome.mark(d, TaskOutcome.failed, ErrorCategory.duplicate_key,
                     describe_duplicates(table, key, dups, int(found.get("dup_rows") or 0), found.get("dup_example"))
                     + "; fix the processor so each key has one row, then rerun these dates")


def _check_expectations(outcome: _Outcome, warehouse: Warehouse, spec: PipelineSpec, proc: Processor,
                        table: TableSchema, cal: Calendar, dates: list[dt.date], rows: Mapping[dt.date, int]) -> None:
    exp = proc.expect
    if exp.rows_per_game:
        for d in dates:
            want = exp.rows_per_game * len(cal.games_on(d))
            if 0 < rows[d] < want:
                games = want // exp.rows_per_game
                outcome.mark(d, TaskOutcome.partial, ErrorCategory.partial_data,
                             f"{rows[d]} of {want} expected rows ({exp.rows_per_game} per game x {games} games)")
    if exp.rows_like:
        source, part = _table_of(spec, exp.rows_like)
        if part is not None and warehouse.table_exists(source):
            got = {as_date(r["d"]): int(r["n"]) for r in warehouse.query(
                f"SELECT {part} AS d, COUNT(*) AS n FROM {source} WHERE {part} IN UNNEST(@dates) GROUP BY 1",
                {"dates": dates})}
            for d in dates:
                if 0 < rows[d] < got.get(d, 0):
                    outcome.mark(d, TaskOutcome.partial, ErrorCategory.partial_data,
                                 f"{rows[d]} rows where {exp.rows_like} has {got[d]} (one row per row expected)")
    if exp.every_team:
        present: dict[dt.date, set[str]] = {}
        for r in warehouse.query(
                f"SELECT DISTINCT {table.partition} AS d, {exp.every_team} AS team FROM {table.name} "
                f"WHERE {table.partition} IN UNNEST(@dates)", {"dates": dates}):
            present.setdefault(as_date(r["d"]), set()).add(str(r["team"]))
        for d in dates:
            absent = sorted(cal.teams_on(d) - present.get(d, set()))
            if rows[d] > 0 and absent:
                outcome.mark(d, TaskOutcome.partial, ErrorCategory.partial_data,
                             f"no rows for {len(absent)} team(s) playing: {', '.join(absent[:6])}")


def verify_written(warehouse: Warehouse, spec: PipelineSpec, cal: Calendar,
                   partitions: Mapping[str, Sequence[dt.date]]) -> dict[tuple[str, dt.date], str]:
    """Partitions written by someone else, held to what their processor declares (`expect:`): why each fails.

    The same checks as after a write of ours: rows on a date with games (unless the schedule
    says the date may be empty), then `rows_per_game`, `rows_like` and `every_team`.
    """
    out: dict[tuple[str, dt.date], str] = {}
    emptiness = Emptiness(spec, cal)
    for name, dates in partitions.items():
        proc = spec.processors[name]
        if not dates:
            continue
        if not proc.columns or not warehouse.table_exists(proc.target):
            out.update({(name, d): f"{proc.target} does not exist" for d in dates})
            continue
        table = proc.table
        outcome = _Outcome(dates)
        counts = {as_date(r["d"]): int(r["n"]) for r in warehouse.query(
            f"SELECT {table.partition} AS d, COUNT(*) AS n FROM {table.name} WHERE {table.partition} IN UNNEST(@dates) "
            "GROUP BY 1", {"dates": sorted(dates)})}
        rows = {d: counts.get(d, 0) for d in dates}
        settled = [d for d in dates if not emptiness.may_be_empty(name, d)]
        for d in settled:
            if rows[d] == 0 and cal.games_on(d):
                outcome.mark(d, TaskOutcome.failed, ErrorCategory.empty_output,
                             f"0 rows in {table.name} on a date with {len(cal.games_on(d))} game(s)")
        _check_expectations(outcome, warehouse, spec, proc, table, cal, settled, rows)
        for d in dates:
            if outcome.status[d] != TaskOutcome.success:
                out[(name, d)] = outcome.issue[d][1]
    return out


def _table_of(spec: PipelineSpec, name: str) -> tuple[str, str | None]:
    """(table, partition column) of a processor or a raw table."""
    if name in spec.processors:
        return spec.processors[name].target, spec.processors[name].partition
    raw = spec.raw_tables.get(name)
    return name, raw.partition if raw is not None else None


def _partial_raw(warehouse: Warehouse, spec: PipelineSpec, proc: Processor, cal: Calendar,
                 dates: list[dt.date]) -> list[tuple[str, dt.date]]:
    """Scheduled (game, team)s that a same-date raw table the processor reads has no row for.

    Raw tables declare which columns name the game and the team (`game:`, `team:`); a game
    with one team's rows missing is partial too, not only a game missing altogether.
    """
    out: list[tuple[str, dt.date]] = []
    for dep in proc.depends_on:
        raw = spec.raw_tables.get(dep.source)
        if dep.is_processor or raw is None or raw.partition is None or raw.game is None \
                or dep.source == spec.schedule_table or not dep.window.reads_current:
            continue
        cols = f"{raw.game} AS g" + (f", {raw.team} AS t" if raw.team else "")
        have: set[tuple[dt.date, str, str | None]] = {
            (as_date(r["d"]), str(r["g"]), str(r["t"]) if raw.team else None) for r in warehouse.query(
                f"SELECT DISTINCT {raw.partition} AS d, {cols} FROM {dep.source} "
                f"WHERE {raw.partition} IN UNNEST(@dates)", {"dates": dates})}
        games_seen = {(d, g) for d, g, _ in have}
        for d in dates:
            for game in cal.games_on(d):
                if (d, game.game_id) not in games_seen:
                    out.append((f"{dep.source} has no rows for scheduled game {game.game_id} "
                                f"({game.away_team} at {game.home_team}); processed what is there", d))
                    continue
                if raw.team:
                    for team in (game.home_team, game.away_team):
                        if (d, game.game_id, team) not in have:
                            out.append((f"{dep.source} has no rows for team {team} in game {game.game_id} "
                                        f"({game.away_team} at {game.home_team}); processed what is there", d))
    return out
