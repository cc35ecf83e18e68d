"""Run one planned task against a warehouse and say exactly what happened, as data.

The Celery engine wraps `execute_task`; tests and the benchmark call it directly. A task's write
is one `replace_partitions` call, atomic and idempotent, so a failure or a kill never leaves
half a partition and a rerun never duplicates a row. Everything after the write (row counts,
NULL checks, partial raw data, registry gaps) only adds warnings: the data is already right or
already reported.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from backfill import registry
from backfill.errors import BackfillError, QuotaExceeded, TransientWarehouseError, WarehouseError
from backfill.planner.model import Task
from backfill.spec import PipelineSpec, Processor
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema

ERROR_CATEGORIES = ("quota", "transient", "dependency_gap", "schema_drift", "partial_data", "registry_gap",
                    "processor_error", "auth_config")
TASK_STATUSES = ("success", "partial", "failed")


@dataclass
class TaskResult:
    """The outcome of one attempt of one task; JSON round-trips so it can cross process boundaries."""

    task_id: str
    processor: str
    phase: int
    season: str
    dates: tuple[dt.date, ...]
    status: str
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

    @property
    def ok(self) -> bool:
        return self.status in ("success", "partial")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dates"] = [d.isoformat() for d in self.dates]
        data["rows_by_date"] = {d.isoformat(): n for d, n in self.rows_by_date.items()}
        for k in ("started_at", "finished_at"):
            value = getattr(self, k)
            data[k] = value.isoformat() if value is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskResult:
        def when(v: Any) -> dt.datetime | None:
            return dt.datetime.fromisoformat(v) if v else None

        return cls(
            task_id=data["task_id"], processor=data["processor"], phase=int(data["phase"]), season=data["season"],
            dates=tuple(dt.date.fromisoformat(d) for d in data["dates"]), status=data["status"],
            rows=int(data.get("rows", 0)),
            rows_by_date={dt.date.fromisoformat(k): int(v) for k, v in (data.get("rows_by_date") or {}).items()},
            duration_seconds=float(data.get("duration_seconds", 0.0)), started_at=when(data.get("started_at")),
            finished_at=when(data.get("finished_at")), error_category=data.get("error_category"),
            error_message=data.get("error_message"), warnings=list(data.get("warnings") or []),
            unresolved_players=int(data.get("unresolved_players", 0)), attempt=int(data.get("attempt", 1)))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Failed(Exception):
    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category
        self.message = message


def execute_task(task: Task, warehouse: Warehouse, spec: PipelineSpec, *, run_id: str = "adhoc",
                 attempt: int = 1, raise_transient: bool = True) -> TaskResult:
    """Replace the task's partitions with its processor's SQL output and report the outcome.

    Final failures are *returned* (status `failed`, with a category), never raised, so one bad
    date cannot fail a whole wave. The exception is a transient or quota error: with
    `raise_transient` (the default) it is re-raised as `TransientWarehouseError` /
    `QuotaExceeded` so the engine can retry it with backoff; with `raise_transient=False` it
    is returned as a failed result with category `transient` / `quota`, for callers that retry
    themselves. Status `partial` means the rows were written but something is known to be
    missing: required columns with NULLs, or raw box scores covering fewer games than the
    schedule on a date (category `partial_data`, details in `warnings`). Names that did not
    resolve through the player registry are counted in `unresolved_players` and recorded in
    `nba_reference.unresolved_players`; they are a warning, never a failure.
    """
    started = _now()
    clock = time.monotonic()
    result = TaskResult(task.id, task.processor, task.phase, task.season, tuple(task.dates), "success",
                        started_at=started, attempt=attempt)
    try:
        proc, table, sql = _prepare(task, spec)
        _ensure_tables(warehouse, spec, proc, table)
        labels = {"run_id": run_id, "task_id": task.id, "processor": task.processor}
        try:
            warehouse.replace_partitions(table, task.dates, sql,
                                         {"start_date": min(task.dates), "end_date": max(task.dates)},
                                         labels=labels)
        except TransientWarehouseError:
            raise
        except WarehouseError as exc:
            raise _Failed(exc.category if exc.category in ERROR_CATEGORIES else "processor_error",
                          f"{proc.sql}: {exc.message}") from exc
        try:
            _inspect(result, task, warehouse, spec, proc, table)
        except TransientWarehouseError:
            raise
        except Exception as exc:  # noqa: BLE001 - the write succeeded; a failed check is only a warning
            result.warnings.append(f"post-write checks failed: {type(exc).__name__}: {exc}")
    except TransientWarehouseError as exc:
        if raise_transient:
            raise
        result.status = "failed"
        result.error_category = "quota" if isinstance(exc, QuotaExceeded) else exc.category
        result.error_message = exc.message
    except _Failed as exc:
        result.status = "failed"
        result.error_category = exc.category
        result.error_message = exc.message
    except Exception as exc:  # noqa: BLE001 - a final failure is data, whatever raised it
        result.status = "failed"
        result.error_category = "processor_error"
        result.error_message = f"{type(exc).__name__}: {exc}"
    result.finished_at = _now()
    result.duration_seconds = round(time.monotonic() - clock, 4)
    return result


def _prepare(task: Task, spec: PipelineSpec) -> tuple[Processor, TableSchema, str]:
    proc = spec.processors.get(task.processor)
    if proc is None:
        raise _Failed("auth_config", f"processor {task.processor} is not in pipeline {spec.name}")
    if not task.dates:
        raise _Failed("processor_error", f"task {task.id} has no dates")
    if proc.sql is None:
        raise _Failed("auth_config", f"processor {proc.name} has no `sql:` file (python processors are not supported)")
    try:
        sql = proc.sql.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Failed("processor_error", f"cannot read SQL file {proc.sql}: {exc}") from exc
    if not sql.strip():
        raise _Failed("processor_error", f"SQL file {proc.sql} is empty")
    try:
        table = proc.table
    except BackfillError as exc:
        raise _Failed("auth_config", exc.message) from exc
    return proc, table, sql


def _ensure_tables(warehouse: Warehouse, spec: PipelineSpec, proc: Processor, table: TableSchema) -> None:
    """Create the target and upstream tables up front, retrying: creation is idempotent, yet two
    threads creating the same dataset at once can conflict, and that must not fail a task.

    An upstream that never ran yet has no table; for a window that is simply no rows, not an
    error. Early-season tasks have empty windows and may run before any upstream task (in a
    shuffled or wide wave), so their SQL must find the upstream tables, even empty.
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


def _inspect(result: TaskResult, task: Task, warehouse: Warehouse, spec: PipelineSpec, proc: Processor,
             table: TableSchema) -> None:
    """Row counts, NULLs in required columns, partial raw data and registry gaps, after the write."""
    required = sorted(set(proc.required_columns) | {c.name for c in table.columns if c.required})
    dates = sorted(set(task.dates))
    nulls = ", ".join(f"COUNTIF({c} IS NULL) AS null_{c}" for c in required)
    rows = warehouse.query(
        f"SELECT {table.partition} AS d, COUNT(*) AS n{', ' + nulls if nulls else ''} FROM {table.name} "
        f"WHERE {table.partition} IN UNNEST(@dates) GROUP BY 1", {"dates": dates})
    counts = {r["d"]: int(r["n"]) for r in rows}
    result.rows_by_date = {d: counts.get(d, 0) for d in dates}
    result.rows = sum(result.rows_by_date.values())
    for c in required:
        missing = sum(int(r[f"null_{c}"] or 0) for r in rows)
        if missing:
            result.warnings.append(f"{table.name}.{c}: {missing} NULL value(s) in a required column")
            _mark_partial(result)
    for message in _partial_raw(warehouse, spec, proc, dates):
        result.warnings.append(message)
        _mark_partial(result)
    if registry.uses_registry(proc):
        try:
            result.unresolved_players = registry.record_unresolved(warehouse, proc, dates)
        except Exception as exc:  # noqa: BLE001 - a registry report must never fail the task
            result.warnings.append(f"could not record unresolved players: {type(exc).__name__}: {exc}")
        if result.unresolved_players:
            result.warnings.append(f"{result.unresolved_players} player name(s) did not resolve through the "
                                   f"registry (listed in {registry.UNRESOLVED_PLAYERS.name})")


def _mark_partial(result: TaskResult) -> None:
    result.status = "partial"
    result.error_category = "partial_data"


def _partial_raw(warehouse: Warehouse, spec: PipelineSpec, proc: Processor, dates: list[dt.date]) -> list[str]:
    """Dates where a same-date raw game table holds fewer games than the schedule says were played."""
    out: list[str] = []
    for dep in proc.depends_on:
        if dep.is_processor or dep.source == spec.schedule_table or not dep.window.reads_current:
            continue
        raw = spec.raw_tables.get(dep.source)
        if raw is None or raw.partition is None or "game_id" not in warehouse.table_columns(dep.source):
            continue
        rows = warehouse.query(
            f"SELECT s.game_date AS d, COUNT(DISTINCT s.game_id) AS scheduled, COUNT(DISTINCT r.game_id) AS present "
            f"FROM {spec.schedule_table} AS s LEFT JOIN (SELECT DISTINCT game_id, {raw.partition} AS game_date "
            f"FROM {dep.source} WHERE {raw.partition} IN UNNEST(@dates)) AS r "
            f"ON r.game_id = s.game_id AND r.game_date = s.game_date "
            f"WHERE s.game_date IN UNNEST(@dates) GROUP BY 1 ORDER BY 1", {"dates": dates})
        for r in rows:
            if int(r["present"]) < int(r["scheduled"]):
                out.append(f"{r['d']}: {dep.source} has {r['present']} of {r['scheduled']} scheduled games "
                           "(partial raw data; processed what is there)")
    return out


def history_rows(result: TaskResult, task: Task, run_id: str, wave: int) -> list[dict[str, Any]]:
    """One processor_run_history row per date of the task (the table is partitioned by date)."""
    per_date = result.duration_seconds / max(len(result.dates), 1)
    warnings = json.dumps(result.warnings)
    return [{
        "processor_name": result.processor, "phase": result.phase, "data_date": d, "season": result.season,
        "run_id": run_id, "task_id": result.task_id, "status": result.status, "attempt": result.attempt,
        "records_processed": result.rows_by_date.get(d, 0), "duration_seconds": round(per_date, 4),
        "started_at": result.started_at, "finished_at": result.finished_at,
        "error_category": result.error_category, "error_message": result.error_message,
        "warnings": warnings, "backfill_mode": True, "bootstrap": task.bootstrap, "wave": wave,
    } for d in result.dates]
