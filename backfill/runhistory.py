"""processor_run_history: the durable record of every task attempt, in the users' own table.

The table is the users' `nba_reference.processor_run_history` as their processors write it
(USERS.md): every one of their columns keeps its name and type, `status` speaks their vocabulary
(success / failed / partial / skipped) and `failure_category` theirs, so their queries run on it
unchanged. What only this tool knows (its own outcome, such as `blocked`; its error category; the
task, wave and code version) goes into extra columns beside theirs. A table that already exists
gets the columns it lacks; no column is retyped and no row of theirs is touched. A column whose
type cannot hold what the tool writes is refused before a run starts (`problems`).

Rows are appended in bulk (one write per `history_flush_tasks` settled tasks or
`history_flush_seconds`, never one per task: per-task load jobs are what exhausted the users'
BigQuery quotas). Nothing is updated in place, so there are no stale `running` rows to clean up:
the latest row per (processor, date) is the truth. A processor may name the `history_names` its
own code writes under (`PlayerGameSummaryProcessor`): those rows count as its own when reading.

`build_rows` is the one place a history row is made, for every outcome.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backfill.calendar import Calendar
from backfill.outcome import ErrorCategory, TaskOutcome
from backfill.spec import DEFAULT_RUN_HISTORY_TABLE
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema, check_table_name, schema

STATUSES = tuple(TaskOutcome)
if TYPE_CHECKING:
    from backfill.planner.model import Task
    from backfill.spec import PipelineSpec

# Our outcomes -> their `status` vocabulary (running/success/failed/partial/skipped). A task that
# never ran (blocked by a failed upstream, cancelled, revoked) is `skipped` with a `skip_reason`.
THEIR_STATUS: dict[str, str] = {
    TaskOutcome.success: "success", TaskOutcome.partial: "partial", TaskOutcome.failed: "failed",
    TaskOutcome.blocked: "skipped", TaskOutcome.cancelled: "skipped", TaskOutcome.revoked: "skipped"}
# Our error categories -> their `failure_category` vocabulary; ours stays in `error_category`.
THEIR_CATEGORY: dict[str, str] = {
    ErrorCategory.dependency_gap: "upstream_failure", ErrorCategory.empty_output: "no_data_available",
    ErrorCategory.partial_data: "no_data_available", ErrorCategory.transient: "timeout",
    ErrorCategory.quota: "processing_error", ErrorCategory.schema_drift: "configuration_error",
    ErrorCategory.critical: "configuration_error", ErrorCategory.auth_config: "configuration_error",
    ErrorCategory.processor_error: "processing_error", ErrorCategory.registry_gap: "processing_error",
    ErrorCategory.duplicate_key: "processing_error"}
# Only `success` is done: a partial partition is written but short of what was expected, so
# `gaps` lists it and `enqueue` runs it again rather than skipping it as finished.
DONE_STATUSES = (TaskOutcome.success,)
HISTORY_KEY = ("run_id", "task_id", "data_date", "retry_attempt")
TRIGGERED_BY = "backfill"
# An existing column may be of another type than ours when it can still hold our values.
_HOLDS = {("STRING", "JSON"), ("FLOAT64", "INT64"), ("NUMERIC", "INT64")}


def history_schema(table: str = DEFAULT_RUN_HISTORY_TABLE) -> TableSchema:
    """The users' columns (names, types, NOT NULLs as theirs), then the tool's own."""
    return schema(
        table, "data_date",
        ("processor_name", "STRING", True), ("run_id", "STRING", True), ("season_year", "INT64"),
        ("status", "STRING", True), ("duration_seconds", "FLOAT64"), ("records_processed", "INT64"),
        ("records_created", "INT64"), ("records_updated", "INT64"), ("records_skipped", "INT64"),
        ("backfill_mode", "BOOL"), ("force_reprocess", "BOOL"), ("test_mode", "BOOL"),
        ("execution_host", "STRING"), ("triggered_by", "STRING"), ("errors", "JSON"), ("warnings", "JSON"),
        ("summary", "JSON"), ("data_date", "DATE", True), ("started_at", "TIMESTAMP", True),
        ("processed_at", "TIMESTAMP"), ("phase", "STRING"), ("output_table", "STRING"),
        ("output_dataset", "STRING"), ("trigger_source", "STRING"), ("parent_processor", "STRING"),
        ("upstream_dependencies", "JSON"), ("dependency_check_passed", "BOOL"), ("missing_dependencies", "JSON"),
        ("stale_dependencies", "JSON"), ("alert_sent", "BOOL"), ("retry_attempt", "INT64"), ("skipped", "BOOL"),
        ("skip_reason", "STRING"), ("failure_category", "STRING"),
        # The tool's own, beside theirs: `success` makes their Decision 7 query run unchanged.
        ("success", "BOOL"), ("task_id", "STRING"), ("outcome", "STRING"), ("error_category", "STRING"),
        ("error_message", "STRING"), ("season", "STRING"), ("phase_number", "INT64"), ("wave", "INT64"),
        ("bootstrap", "BOOL"),
        # A fingerprint of the processor's code when the row was written: `stale` partitions.
        ("code_version", "STRING"), ("options", "JSON"),
        cluster=("processor_name", "status", "season_year"))


@dataclass(frozen=True)
class RowContext:
    """What a row needs from the pipeline beside the task: phase names and target tables."""

    phase_names: Mapping[int, str] = field(default_factory=dict)
    targets: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: PipelineSpec) -> RowContext:
        return cls({n: spec.phase_name(n) for n in {p.phase for p in spec.processors.values()}},
                   {n: p.target for n, p in spec.processors.items()})

    def phase(self, number: int) -> str:
        return self.phase_names.get(number) or f"phase_{number}"


def season_year(season: str) -> int | None:
    """`2023-24` -> 2023, the year the season starts (their `season_year`)."""
    try:
        return int(season[:4])
    except (TypeError, ValueError):
        return None


def _when(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def build_rows(task: Task, run_id: str, context: RowContext, *, outcome: str = "success",
               result: Mapping[str, Any] | None = None, attempt: int = 0, category: str | None = None,
               message: str | None = None,
               at: dt.datetime | None = None, parent: str | None = None,
               options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per date of a task, for every outcome.

    With `result` (the executor's JSON): what it says per date. Without it (blocked, revoked,
    cancelled: the task never ran): `outcome`, `category` and `message` for every date, stamped
    `at`, which is also its `started_at`, since their table refuses a row without one.
    """
    result = result or {}
    now = at or dt.datetime.now(dt.UTC)
    finished = _when(result.get("finished_at")) or now
    started = _when(result.get("started_at")) or finished
    per_date = float(result.get("duration_seconds") or 0.0) / max(len(task.dates), 1)
    warnings = [str(w) for w in result.get("warnings") or []]
    by_status = result.get("status_by_date") or {}
    by_issue = result.get("issues_by_date") or {}
    by_rows = result.get("rows_by_date") or {}
    by_check = result.get("checks_by_date") or {}
    sent_raw = result.get("options") if result.get("options") is not None else options
    sent = dict(sent_raw) if sent_raw is not None else None
    dataset, _, table = context.targets.get(task.processor, "").partition(".")
    tried = int(result.get("attempt") or attempt)
    rows = []
    for d in task.dates:
        key = d.isoformat()
        ours = str(by_status.get(key) or result.get("status") or outcome) if result else outcome
        if result.get("noop"):
            ours = "success"
        cat, msg = category, message
        if result and ours != "success":
            issue = by_issue.get(key)
            cat, msg = (issue[0], issue[1]) if issue else (result.get("error_category"), result.get("error_message"))
        elif result:
            cat, msg = None, None
        check = by_check.get(key) or {}
        status = THEIR_STATUS.get(ours, "failed")
        rows.append({
            "processor_name": task.processor, "run_id": run_id, "season_year": season_year(task.season),
            "status": status, "duration_seconds": round(per_date, 4),
            "records_processed": int(by_rows.get(key, 0) or 0),
            "backfill_mode": bool(sent["backfill_mode"]) if sent and "backfill_mode" in sent else None,
            "force_reprocess": bool(sent.get("force_reprocess")) if sent and "force_reprocess" in sent else None,
            "execution_host": result.get("execution_host"), "triggered_by": TRIGGERED_BY,
            "errors": json.dumps([{"category": cat, "message": msg}] if msg or cat else []),
            "warnings": json.dumps(warnings),
            "summary": json.dumps({"task_id": task.id, "dates_in_task": len(task.dates), "wave": task.wave}),
            "data_date": d, "started_at": started, "processed_at": finished,
            "phase": context.phase(task.phase), "output_table": table or None, "output_dataset": dataset or None,
            "trigger_source": f"backfill run {run_id}", "parent_processor": parent,
            "upstream_dependencies": json.dumps(check["upstream"]) if "upstream" in check else None,
            "dependency_check_passed": check.get("passed"),
            "missing_dependencies": json.dumps(check["missing"]) if "missing" in check else None,
            "retry_attempt": tried, "skipped": status == "skipped",
            "skip_reason": f"{ours}: {msg}" if status == "skipped" else None,
            "failure_category": (THEIR_CATEGORY.get(cat or "", "unknown") if cat and status != "success" else None),
            "success": ours == "success", "task_id": task.id, "outcome": ours, "error_category": cat,
            "error_message": msg, "season": task.season, "phase_number": task.phase, "wave": task.wave,
            "bootstrap": task.bootstrap, "code_version": result.get("code_version"),
            "options": json.dumps(sent) if sent is not None else None})
    return rows


class RunHistory:
    """Bulk writes, and the reads the planner, `gaps`, `resume`, staleness and reports need.

    Reads go through `view_sql`, which gives every row the tool's canonical names whatever
    wrote it: `processor_name` as the spec names the processor (their class names mapped through
    `history_names`), `status` the tool's outcome, `finished_at` the write time (`processed_at`).
    """

    def __init__(self, warehouse: Warehouse, table: str = DEFAULT_RUN_HISTORY_TABLE,
                 aliases: Mapping[str, str] | None = None) -> None:
        check_table_name(table)
        self.warehouse = warehouse
        self.table = table
        self.schema = history_schema(table)
        self.aliases = dict(aliases or {})
        self._columns_checked = False

    @classmethod
    def of(cls, warehouse: Warehouse, spec: PipelineSpec) -> RunHistory:
        """The spec's history table, reading its processors' `history_names` as theirs."""
        return cls(warehouse, spec.run_history_table, spec.history_aliases())

    def problems(self) -> list[str]:
        """Columns of an existing table whose type cannot hold what the tool writes there."""
        if not self.warehouse.table_exists(self.table):
            return []
        have = self.warehouse.table_columns(self.table)
        out = []
        for c in self.schema.columns:
            got = have.get(c.name)
            if got is not None and got != c.type and (got, c.type) not in _HOLDS:
                example = {"phase": " (e.g. 'phase_3_analytics')"}.get(c.name, "")
                out.append(f"{self.table}.{c.name} is {got}, but the run history writes {c.type} there{example}; "
                           f"use another run_history_table in the spec, or retype or drop that column")
        return out

    def ensure(self) -> None:
        """Create the table, or add the columns an existing one (theirs, or an older ours) lacks."""
        self.warehouse.create_table(self.schema)
        self.warehouse.add_columns(self.schema)
        self._columns_checked = True

    def write(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Write many rows in one bulk upsert keyed on (run, task, date, attempt).

        Keyed, so a flush that is repeated after writing (a worker killed between the
        write and marking it done) replaces its own rows instead of duplicating them; their
        rows have no `task_id`, so no key of ours ever matches one of theirs.
        """
        if not rows:
            return 0
        if not self._columns_checked:
            self.ensure()
        cols = self.schema.column_names
        return self.warehouse.merge_rows(self.schema, [{c: r.get(c) for c in cols} for r in rows], HISTORY_KEY)

    # -- reading ------------------------------------------------------------------------
    def view_sql(self) -> str:
        """A subquery with the canonical columns; columns the table lacks read as NULL."""
        have = self.warehouse.table_columns(self.table)

        def col(name: str, kind: str = "STRING") -> str:
            return name if name in have else f"CAST(NULL AS {kind})"

        name = "processor_name"
        if self.aliases:
            cases = " ".join(f"WHEN '{a}' THEN '{p}'" for a, p in sorted(self.aliases.items()))
            name = f"CASE processor_name {cases} ELSE processor_name END"
        return (f"SELECT {name} AS processor_name, processor_name AS history_name, data_date, run_id, "
                f"{col('task_id')} AS task_id, COALESCE({col('outcome')}, status) AS status, started_at, "
                f"COALESCE({col('processed_at', 'TIMESTAMP')}, started_at) AS finished_at, "
                f"COALESCE({col('retry_attempt', 'INT64')}, 0) AS attempt, "
                f"COALESCE({col('error_category')}, {col('failure_category')}) AS error_category, "
                f"{col('error_message')} AS error_message, {col('records_processed', 'INT64')} AS records_processed, "
                f"{col('duration_seconds', 'FLOAT64')} AS duration_seconds, {col('warnings', 'JSON')} AS warnings, "
                f"{col('season')} AS season, {col('phase_number', 'INT64')} AS phase_number, "
                f"{col('wave', 'INT64')} AS wave, {col('code_version')} AS code_version, "
                f"{col('triggered_by')} AS triggered_by FROM {self.table}")

    def names(self, processors: Iterable[str]) -> list[str]:
        """The names rows of these processors are written under: theirs and the history names."""
        wanted = set(processors)
        return sorted(wanted | {a for a, p in self.aliases.items() if p in wanted})

    def latest(self, start: dt.date | None = None, end: dt.date | None = None,
               processors: Iterable[str] | None = None, run_id: str | None = None) -> list[dict[str, Any]]:
        """The latest finished row per (processor, date), optionally within a range / for some
        processors / a run. Their `running` rows are not outcomes (the stale ones were what broke
        their dependency checks), so they are left out."""
        if not self.warehouse.table_exists(self.table):
            return []
        where: list[str] = ["status != 'running'"]
        params: dict[str, Any] = {}
        if start is not None:
            where.append("data_date >= @start")
            params["start"] = start
        if end is not None:
            where.append("data_date <= @end")
            params["end"] = end
        if run_id is not None:
            where.append("run_id = @run_id")
            params["run_id"] = run_id
        if processors is not None:
            where.append("history_name IN UNNEST(@processors)")
            params["processors"] = self.names(processors)
        sql = (f"SELECT * FROM ({self.view_sql()}) AS h WHERE {' AND '.join(where)} "
               "QUALIFY ROW_NUMBER() OVER (PARTITION BY processor_name, data_date "
               "ORDER BY finished_at DESC, attempt DESC) = 1")
        return self.warehouse.query(sql, params)

    def completed(self, start: dt.date | None = None, end: dt.date | None = None,
                  processors: Iterable[str] | None = None) -> frozenset[tuple[str, dt.date]]:
        """(processor, date) whose latest attempt succeeded: the planner's skip set."""
        return frozenset((r["processor_name"], r["data_date"]) for r in self.latest(start, end, processors)
                         if r["status"] in DONE_STATUSES)

    def adopted(self, start: dt.date | None = None, end: dt.date | None = None,
                processors: Iterable[str] | None = None) -> frozenset[tuple[str, dt.date]]:
        """The done partitions whose latest success was written by the users' own code (a history name)."""
        return frozenset((r["processor_name"], r["data_date"]) for r in self.latest(start, end, processors)
                         if r["status"] in DONE_STATUSES and r["history_name"] in self.aliases)

    def gaps(self, calendar: Calendar, processors: Iterable[str], start: dt.date,
             end: dt.date) -> list[tuple[str, dt.date]]:
        """(processor, game date) in [start, end] whose latest attempt is not `success`.

        Only the schedule's game dates can be gaps, so off-days and the All-Star break never are.
        A `partial` date is a gap too: its rows are written, but fewer than expected (its record
        says why); `gaps` lists the reason, and a rerun after the raw data is fixed fills it.
        """
        names = sorted(set(processors))
        done = self.completed(start, end, names)
        return [(name, day) for day in calendar.game_dates_between(start, end) for name in names
                if (name, day) not in done]

    def status_counts(self, start: dt.date | None = None, end: dt.date | None = None,
                      processors: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
        """processor -> latest status -> number of dates (a processor's success rate at a glance)."""
        out: dict[str, dict[str, int]] = {}
        for r in self.latest(start, end, processors):
            per = out.setdefault(r["processor_name"], {})
            per[r["status"]] = per.get(r["status"], 0) + 1
        return out

    def task_samples(self, limit: int = 20000) -> list[tuple[str, int, float]]:
        """(processor, dates in the task, task seconds) of done task attempts: the batching model's data.

        Each row holds its task's seconds divided by the task's dates, so the sum over a task's
        rows is the task's duration and their count its batch size. Only the tool's own rows have
        tasks; their rows are one run per date and tell nothing about batches.
        """
        if not self.warehouse.table_exists(self.table):
            return []
        rows = self.warehouse.query(
            f"SELECT processor_name, COUNT(*) AS n, SUM(duration_seconds) AS s FROM ({self.view_sql()}) AS h "
            "WHERE status IN UNNEST(@wrote) AND duration_seconds IS NOT NULL AND task_id IS NOT NULL "
            f"GROUP BY processor_name, run_id, task_id, attempt ORDER BY MAX(finished_at) DESC LIMIT {int(limit)}",
            {"wrote": [o.value for o in TaskOutcome if o.wrote]})
        return [(r["processor_name"], int(r["n"]), float(r["s"])) for r in rows if r["s"] is not None]

    def durations(self) -> dict[str, float]:
        """Median-ish seconds per date per processor from successful runs (feeds plan estimates)."""
        if not self.warehouse.table_exists(self.table):
            return {}
        rows = self.warehouse.query(
            f"SELECT processor_name, AVG(duration_seconds) AS s FROM ({self.view_sql()}) AS h "
            "WHERE status = @success AND duration_seconds IS NOT NULL GROUP BY 1",
            {"success": TaskOutcome.success.value})
        return {r["processor_name"]: float(r["s"]) for r in rows if r["s"] is not None}


def stamp(value: Any) -> float | None:
    """A run-history timestamp (datetime, or ISO text from a warehouse that returns text) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()
