"""Defensive checks before a task writes, and the preflight before a run is enqueued.

The upstream check answers, per date of a task: is every upstream partition inside the declared
windows really there? "There" means its latest record (this run's own state first, then the run
history) is a success or partial, and the partition holds rows unless the schedule says it may
legitimately be empty (a bootstrap date whose own inputs were empty). Nothing here knows Celery
or Redis: the run's own state comes in as a function.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from backfill.calendar import Calendar, as_date
from backfill.outcome import ErrorCategory, TaskOutcome
from backfill.planner.model import TaskKey
from backfill.runhistory import RunHistory, stamp
from backfill.spec import PipelineSpec, Processor
from backfill.warehouse import Warehouse

UpstreamState = Callable[[Sequence[TaskKey]], Mapping[TaskKey, str]]
OK_STATUSES = tuple(o for o in TaskOutcome if o.wrote)
DEFAULT_STALE_RUNNING_SECONDS = 6 * 3600.0


@dataclass(frozen=True)
class Gap:
    processor: str
    date: dt.date
    reason: str

    def __str__(self) -> str:
        return f"{self.processor}@{self.date.isoformat()} ({self.reason})"


ROWS_GONE = "0 rows in its table"  # the history says success, the rows are not there


@dataclass
class DateCheck:
    """The verdict for one date of a task."""

    gaps: list[Gap] = field(default_factory=list)
    coverage: dict[str, tuple[int, int]] = field(default_factory=dict)  # upstream -> (present, needed)
    may_be_empty: bool = False

    def describe_coverage(self) -> str:
        return "; ".join(f"{src}: {have} of {need} game dates" for src, (have, need) in sorted(self.coverage.items())
                         if have < need)


def describe_gaps(gaps: Sequence[Gap], first: int = 5) -> str:
    """`a@d1 (never ran), b@d2 (failed) and 3 more (5 in all)`: the first few and the count."""
    shown = ", ".join(str(g) for g in gaps[:first])
    return shown if len(gaps) <= first else f"{shown} and {len(gaps) - first} more ({len(gaps)} in all)"


def gap_fix(gaps: Sequence[Gap]) -> str:
    """The next step for a strict `dependency_gap`: upstream partitions that never ran (or failed)
    are planned by enqueueing again with `--with-upstream`; ones whose history says success while
    their rows are gone need `--force` on that upstream (`--with-upstream` skips what is done)."""
    gone = [g for g in gaps if g.reason == ROWS_GONE]
    if gone and len(gone) == len(gaps):
        return f"refill {gone[0].processor} with `enqueue --processors {gone[0].processor} --force` over those dates"
    return "add --with-upstream to plan them"


class Emptiness:
    """Which (processor, date) partitions may hold few or no rows by the schedule alone.

    A processor that reads only raw data (no processor inputs) has rows on every game date. One
    that reads lookback windows of other processors may legitimately have no row for a team
    whose window is still empty: the season's first `bootstrap_days`, the users' bootstrap
    period. Outside it, an empty partition on a game date is a hole.
    """

    def __init__(self, spec: PipelineSpec, calendar: Calendar) -> None:
        self.spec = spec
        self.calendar = calendar

    def may_be_empty(self, processor: str, day: dt.date) -> bool:
        proc = self.spec.processors[processor]
        if not any(d.source != processor for d in proc.upstream_processors):
            return False
        season = self.calendar.season_of(day) or self.calendar.season_containing(day)
        if season is None:
            return True
        return (day - self.calendar.seasons[season].start).days < self.spec.bootstrap_days


class UpstreamCheck:
    """Run before every task: which upstream partitions of each of its dates are missing."""

    def __init__(self, spec: PipelineSpec, calendar: Calendar, warehouse: Warehouse,
                 in_run: UpstreamState | None = None, *,
                 stale_running_seconds: float = DEFAULT_STALE_RUNNING_SECONDS) -> None:
        self.spec = spec
        self.calendar = calendar
        self.warehouse = warehouse
        self.in_run = in_run
        self.stale_running_seconds = stale_running_seconds
        self.emptiness = Emptiness(spec, calendar)

    def needed(self, proc: Processor, dates: Sequence[dt.date]) -> dict[dt.date, dict[str, set[dt.date]]]:
        """date -> upstream processor -> the partition dates its windows read."""
        own = set(dates)
        out: dict[dt.date, dict[str, set[dt.date]]] = {}
        for d in dates:
            per: dict[str, set[dt.date]] = defaultdict(set)
            for dep in proc.upstream_processors:
                res = self.calendar.resolve(dep.window, d)
                per[dep.source].update(e for e in res.dates if not (dep.source == proc.name and e in own))
            out[d] = dict(per)
        return out

    def check(self, processor: str, dates: Sequence[dt.date]) -> dict[dt.date, DateCheck]:
        proc = self.spec.processors[processor]
        needed = self.needed(proc, dates)
        keys = sorted({(src, e) for per in needed.values() for src, ds in per.items() for e in ds})
        status = self._statuses(keys)
        rows = self._row_counts([k for k in keys if status.get(k, ("", ""))[0] in OK_STATUSES])
        missing: dict[TaskKey, str] = {}
        for k in keys:
            st, why = status.get(k, ("", "never ran"))
            if st not in OK_STATUSES:
                missing[k] = why
            elif rows.get(k, 0) == 0 and not self.emptiness.may_be_empty(*k):
                missing[k] = ROWS_GONE
        out: dict[dt.date, DateCheck] = {}
        for d in dates:
            verdict = DateCheck(may_be_empty=self.emptiness.may_be_empty(processor, d))
            for src, ds in needed[d].items():
                gone = [e for e in sorted(ds) if (src, e) in missing]
                verdict.gaps.extend(Gap(src, e, missing[(src, e)]) for e in gone)
                verdict.coverage[src] = (len(ds) - len(gone), len(ds))
            out[d] = verdict
        return out

    def _statuses(self, keys: Sequence[TaskKey]) -> dict[TaskKey, tuple[str, str]]:
        """(status, reason when not done): this run's own state first, then the latest history record."""
        out: dict[TaskKey, tuple[str, str]] = {}
        if self.in_run is not None and keys:
            for k, st in self.in_run(keys).items():
                out[k] = (st, f"{st} in this run")
        rest = [k for k in keys if k not in out]
        if rest:
            out.update(self._history(rest))
        return out

    def _history(self, keys: Sequence[TaskKey]) -> dict[TaskKey, tuple[str, str]]:
        history = RunHistory.of(self.warehouse, self.spec)
        if not self.warehouse.table_exists(history.table):
            return {}
        rows = self.warehouse.query(
            f"SELECT processor_name, data_date, status, started_at, finished_at, attempt FROM ({history.view_sql()}) "
            "AS h WHERE history_name IN UNNEST(@procs) AND data_date IN UNNEST(@dates)",
            {"procs": history.names({p for p, _ in keys}), "dates": sorted({d for _, d in keys})})
        return latest_statuses(rows, set(keys), self.stale_running_seconds)

    def _row_counts(self, keys: Sequence[TaskKey]) -> dict[TaskKey, int]:
        by_source: dict[str, set[dt.date]] = defaultdict(set)
        for src, d in keys:
            by_source[src].add(d)
        out: dict[TaskKey, int] = {}
        for src, ds in by_source.items():
            proc = self.spec.processors[src]
            if not self.warehouse.table_exists(proc.target):
                continue
            for r in self.warehouse.query(
                    f"SELECT {proc.partition} AS d, COUNT(*) AS n FROM {proc.target} "
                    f"WHERE {proc.partition} IN UNNEST(@dates) GROUP BY 1", {"dates": sorted(ds)}):
                out[(src, as_date(r["d"]))] = int(r["n"])
        return out


def latest_statuses(rows: Iterable[Mapping[str, Any]], keys: set[TaskKey] | None = None,
                    stale_running_seconds: float = DEFAULT_STALE_RUNNING_SECONDS,
                    now: float | None = None) -> dict[TaskKey, tuple[str, str]]:
    """The latest record per partition, as (status, reason). A `running` record never counts as
    done; a stale one (older than `stale_running_seconds`, its writer long gone) is ignored
    altogether, so it can neither block nor pass a check."""
    moment = time.time() if now is None else now
    best: dict[TaskKey, tuple[tuple[float, int], str]] = {}
    for r in rows:
        key = (str(r["processor_name"]), as_date(r["data_date"]))
        if keys is not None and key not in keys:
            continue
        st = str(r["status"])
        when = stamp(r.get("finished_at")) or stamp(r.get("started_at")) or 0.0
        if st == "running" and moment - (stamp(r.get("started_at")) or when) > stale_running_seconds:
            continue
        rank = (when, int(r.get("attempt") or 0))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, st)
    reasons = {"running": "still running elsewhere"}
    return {k: (st, reasons.get(st, st)) for k, (_, st) in best.items()}


# -- preflight: before anything is enqueued --------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One reason not to start a run; preflight lists them all at once."""

    kind: str  # schedule, raw_table, upstream_table, sql, schema_drift, connection
    message: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


@lru_cache(maxsize=256)
def _parsed(sql: str) -> tuple[Any, ...]:
    """The statements of BigQuery SQL, parsed once per process: preflight reads each processor's
    SQL three times (its syntax, then the columns it reads, twice), and a parse costs 20-100 ms.
    Shared trees: callers only read them. A ParseError (or TokenError) is raised, not cached."""
    import sqlglot

    return tuple(sqlglot.parse(sql, read="bigquery"))


def columns_read(sql: str, tables: Iterable[str], *, through_stars: bool = True) -> dict[str, set[str]]:
    """table -> the column names the SQL reads from it (BigQuery dialect, parsed with sqlglot).

    A column counts when it is qualified by the table's alias or sits in a scope that reads only
    that table; with `through_stars`, also when it reaches the table through a `t.*` projection
    of a CTE (looser: a star over a join passes every name to each table, so use it only to
    pick columns that exist, never to claim one is missing).
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.optimizer.scope import traverse_scope

    wanted = set(tables)
    out: dict[str, set[str]] = {t: set() for t in wanted}
    try:
        trees = _parsed(sql)
    except sqlglot.errors.ParseError:
        return out
    if not trees or trees[0] is None:  # what `sqlglot.parse_one` refuses
        return out
    # Several statements: one block of copies (a block would re-parent the cached trees).
    tree = trees[0] if len(trees) == 1 else exp.Block(expressions=[t.copy() for t in trees if t is not None])

    def name_of(t: exp.Table) -> str:
        return ".".join(x for x in (t.db, t.name) if x)

    star_tables: dict[int, set[str]] = {}  # id(scope) -> tables whose columns it passes on with t.*
    named: dict[int, set[str]] = {}  # id(scope) -> the names it projects explicitly
    scopes = traverse_scope(tree)
    for scope in scopes:
        named[id(scope)] = {p.alias_or_name for p in getattr(scope.expression, "expressions", [])}
        passed: set[str] = set()
        for proj in getattr(scope.expression, "expressions", []):
            star = proj if isinstance(proj, exp.Star) else (proj.this if isinstance(proj, exp.Column) and
                                                              isinstance(proj.this, exp.Star) else None)
            if star is None:
                continue
            qualifier = proj.table if isinstance(proj, exp.Column) else ""
            sources = [scope.sources[qualifier]] if qualifier in scope.sources else list(scope.sources.values())
            for source in sources:
                if isinstance(source, exp.Table):
                    passed.add(name_of(source))
                else:
                    passed |= star_tables.get(id(source), set())
        star_tables[id(scope)] = passed
    for scope in scopes:
        for col in scope.columns:
            q = col.table
            src: Any = scope.sources.get(q) if q else (next(iter(scope.sources.values()))
                                                       if len(scope.sources) == 1 else None)
            names: set[str] = set()
            if isinstance(src, exp.Table):
                names = {name_of(src)}
            elif src is not None and through_stars and col.name not in named.get(id(src), set()):
                names = star_tables.get(id(src), set())
            for n in names & wanted:
                out[n].add(col.name)
    return out


def sql_syntax_error(sql: str, path: Path) -> str | None:
    """`FILE:LINE:COL: message` when the SQL does not parse as BigQuery SQL, else None.

    Parsed here, before any warehouse sees it: the warehouse would report the line of its own
    (transpiled) statement, not of the file the user edits.
    """
    import sqlglot

    try:
        _parsed(sql)
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        line, col = first.get("line"), first.get("col")
        at = f"{path}:{line}:{col}" if line else str(path)
        what = str(first.get("description") or str(exc).splitlines()[0])
        near = str(first.get("highlight") or "").strip()
        return f"{at}: SQL syntax error: {what}" + (f" near {near!r}" if near else "")
    except sqlglot.errors.TokenError as exc:
        return f"{path}: SQL syntax error: {str(exc).splitlines()[0]}"
    return None


def preflight(spec: PipelineSpec, warehouse: Warehouse, calendar: Calendar, processors: Sequence[str],
              ranges: Sequence[tuple[dt.date, dt.date]], seasons: Iterable[str] | None = None) -> list[Problem]:
    """Everything that would make the selected processors fail for reasons no retry can fix.

    The schedule must have game dates in the range; every raw table and every upstream table
    outside the selection must exist with the columns the SQL reads; a column read by a
    processor must not be empty (all NULL) in a season of the range while its table has rows
    there (schema drift: a raw feed that changed format). All problems at once, nothing changed.
    """
    problems: list[Problem] = []
    lo, hi = min(a for a, _ in ranges), max(b for _, b in ranges)
    picked = [d for a, b in ranges for d in calendar.game_dates_between(a, b)
              if not seasons or calendar.season_of(d) in set(seasons)]
    if not picked:
        problems.append(Problem("schedule", f"the schedule {spec.schedule_table} has no game dates between {lo} and "
                                            f"{hi} (it covers {_span(calendar)})"))
    range_seasons = sorted({s for d in picked if (s := calendar.season_of(d))})
    selected = set(processors)
    readers: dict[str, list[str]] = defaultdict(list)
    reads: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    sure: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for name in processors:
        proc = spec.processors[name]
        sql = ""
        if proc.sql is not None:
            try:
                sql = proc.sql.read_text(encoding="utf-8")
            except OSError as exc:
                problems.append(Problem("sql", f"{name}: cannot read {proc.sql}: {exc.strerror or exc}"))
            except UnicodeDecodeError as exc:
                problems.append(Problem("sql", f"{name}: {proc.sql} is not UTF-8 text ({exc.reason} at byte "
                                               f"{exc.start}); save it as UTF-8"))
            syntax = sql_syntax_error(sql, proc.sql) if sql else None
            if syntax is not None:
                problems.append(Problem("sql_syntax", f"{name}: {syntax}"))
                sql = ""  # its columns cannot be read; the syntax error says it all
        elif proc.kind == "sql":
            problems.append(Problem("sql", f"{name}: no `sql:` file"))
        sources = {d.source for d in proc.depends_on if not d.is_processor}
        sources |= {spec.processors[d.source].target for d in proc.upstream_processors
                    if d.source not in selected}
        for table in sources:
            readers[table].append(name)
        for table, cols in columns_read(sql, sources).items():
            reads[table][name] |= cols
        for table, cols in columns_read(sql, sources, through_stars=False).items():
            sure[table][name] |= cols
    for table in sorted(readers):
        who = ", ".join(readers[table])
        upstream = next((p for p in spec.processors.values() if p.target == table), None)
        if not warehouse.table_exists(table):
            if upstream is not None:
                problems.append(Problem("upstream_table", f"{table} does not exist: run {upstream.name} first "
                                                          f"(read by {who})"))
            else:
                problems.append(Problem("raw_table", f"raw table {table} does not exist (read by {who}); "
                                                     "load it first (`backfill data ...`)"))
            continue
        have = warehouse.table_columns(table)
        for proc_name, cols in sorted(sure[table].items()):
            for col in sorted(cols - set(have)):
                problems.append(Problem(ErrorCategory.schema_drift,
                                        f"{table} has no column {col} (read by {proc_name})"))
        raw = spec.raw_tables.get(table)
        part = raw.partition if raw is not None else None
        if part is None or not range_seasons:
            continue  # drift is a property of raw feeds; a processor's NULLs are its honest output
        read = sorted({c for cs in reads[table].values() for c in cs} & set(have) - {part})
        problems.extend(_empty_columns(warehouse, calendar, table, part, read, range_seasons, reads[table]))
    return problems


def _empty_columns(warehouse: Warehouse, calendar: Calendar, table: str, part: str, cols: list[str],
                   seasons: list[str], readers: Mapping[str, set[str]]) -> list[Problem]:
    """Columns entirely NULL in a season where the table has rows: one query per table."""
    if not cols:
        return []
    cases = " ".join(f"WHEN {part} BETWEEN DATE '{calendar.seasons[s].start}' AND DATE '{calendar.seasons[s].end}' "
                     f"THEN '{s}'" for s in seasons)
    counts = ", ".join(f"COUNT({c}) AS c_{c}" for c in cols)
    rows = warehouse.query(f"SELECT season_label, COUNT(*) AS n, {counts} FROM (SELECT *, CASE {cases} END AS "
                           f"season_label FROM {table}) AS t WHERE season_label IS NOT NULL GROUP BY 1")
    out: list[Problem] = []
    for r in sorted(rows, key=lambda r: str(r["season_label"])):
        if not int(r["n"]):
            continue
        for c in cols:
            if int(r[f"c_{c}"] or 0) == 0:
                who = ", ".join(sorted(p for p, cs in readers.items() if c in cs))
                out.append(Problem(ErrorCategory.schema_drift, f"{table}.{c} is missing in season {r['season_label']} "
                                                   f"(NULL in all {r['n']} rows; read by {who})"))
    return out


def _span(calendar: Calendar) -> str:
    if not calendar.dates:
        return "no dates: load raw data first"
    return f"{calendar.dates[0]} to {calendar.dates[-1]}, seasons {', '.join(calendar.seasons)}"
