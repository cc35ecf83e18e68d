"""`backfill validate`: the users' four checks and the acceptance criteria, against the schedule.

1. completeness: every game date of the selection has rows (a missing date is a gap; an
   off-day, the All-Star break or the days between the regular season and the playoffs are not
   partitions at all), missing dates grouped into runs of consecutive game dates;
2. row counts: each date against what `expect:` declares (within `row_tolerance`), and outliers
   far below the season's median rows per game;
3. success rate per processor and phase from the run history's latest record per partition
   (never run, failed, partial and `running` records are not successes; stale `running`
   records are named);
4. data quality: NULLs in required columns and values out of range, with example keys; the
   declared coverage of one processor by another (Phase 4 of Phase 3); spot checks that
   recompute random partitions and compare;
and staleness (backfill.validate.staleness). Each table is read by one query grouped by date,
filtered on its partition column over the selection's span, so a four-season BigQuery table is
scanned once per check, never once per date.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from backfill.acceptance import Criteria, effective
from backfill.calendar import Calendar, as_date
from backfill.checks import DEFAULT_STALE_RUNNING_SECONDS, Emptiness
from backfill.keys import describe_duplicates, duplicates_sql
from backfill.outcome import TaskOutcome
from backfill.runhistory import RunHistory, stamp
from backfill.spec import PipelineSpec, Processor
from backfill.validate.spotcheck import sample_partitions, spot_check
from backfill.validate.staleness import find_stale, game_date_runs, recompute_commands
from backfill.validate.verify import verify_done
from backfill.warehouse import Warehouse

EXAMPLES = 5
CHECKS = (("completeness", "1. completeness"), ("row_counts", "2. row counts"), ("success_rate", "3. success rate"),
          ("nulls", "4a. required columns non-NULL"), ("ranges", "4b. values in range"),
          ("coverage", "4c. coverage"), ("spot_checks", "4d. spot checks"), ("keys", "4e. keys unique"),
          ("staleness", "5. staleness"))


@dataclass
class Finding:
    processor: str | None
    message: str
    dates: list[dt.date] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"processor": self.processor, "message": self.message, "dates": [d.isoformat() for d in self.dates],
                "examples": self.examples}


@dataclass
class Check:
    name: str
    title: str
    figures: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "passed": self.passed, "figures": self.figures,
                "findings": [f.to_json() for f in self.findings], "data": self.data}


@dataclass
class Report:
    pipeline: str
    ranges: list[tuple[dt.date, dt.date]]
    processors: list[str]
    seasons: list[str]
    seed: int
    checks: list[Check]
    game_dates: int
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "pipeline": self.pipeline,
                "ranges": [[a.isoformat(), b.isoformat()] for a, b in self.ranges], "processors": self.processors,
                "seasons": self.seasons, "game_dates": self.game_dates, "seed": self.seed,
                "seconds": round(self.seconds, 2), "checks": [c.to_json() for c in self.checks]}


@dataclass
class _Table:
    """One processor's per-date figures over the selection: rows, teams, NULLs, out-of-range values."""

    rows: dict[dt.date, int] = field(default_factory=dict)
    teams: dict[dt.date, int] = field(default_factory=dict)
    nulls: dict[str, dict[dt.date, int]] = field(default_factory=lambda: defaultdict(dict))
    bad: dict[str, dict[dt.date, int]] = field(default_factory=lambda: defaultdict(dict))


def validate(spec: PipelineSpec, warehouse: Warehouse, calendar: Calendar, processors: Sequence[str],
             ranges: Sequence[tuple[dt.date, dt.date]], seasons: Sequence[str] | None = None, *,
             seed: int | None = None, spot_checks: int | None = None,
             pipeline_flag: str | None = None, season_types: Sequence[str] | None = None) -> Report:
    """Run every check over the selection; the report passes only when every criterion holds.

    `seasons` and `season_types` narrow the ranges' game dates the way a run's own selection
    did, so validating a `--seasons 2022-23` run judges that season only.
    """
    began = time.monotonic()
    picked = sorted({d for lo, hi in ranges for d in calendar.game_dates_between(lo, hi)
                     if calendar.selected(d, seasons, season_types)})
    seed = random.SystemRandom().randrange(1_000_000) if seed is None else seed
    run = _Run(spec, warehouse, calendar, list(processors), picked)
    checks = [Check(name, title) for name, title in CHECKS]
    by_name = {c.name: c for c in checks}
    if picked:
        run.completeness(by_name["completeness"])
        run.row_counts(by_name["row_counts"])
        run.success_rate(by_name["success_rate"])
        run.quality(by_name["nulls"], by_name["ranges"])
        run.coverage(by_name["coverage"])
        n = spec.acceptance.spot_checks if spot_checks is None else spot_checks
        run.spot_checks(by_name["spot_checks"], n, seed)
        run.keys(by_name["keys"])
        stale = find_stale(spec, calendar, warehouse, processors, ranges, seasons, pipeline_flag, season_types)
        check = by_name["staleness"]
        check.figures.append(f"{stale.checked - len(stale.stale)} of {stale.checked} written partitions current"
                             + (f" ({stale.unversioned} written before code versions were recorded)"
                                if stale.unversioned else ""))
        per: dict[str, list[Any]] = defaultdict(list)
        for part in stale.stale:
            per[part.processor].append(part)
        for name, items in per.items():
            check.findings.append(Finding(name, f"{len(items)} stale partition(s): {items[0].reasons[0]}",
                                          [s.date for s in items]))
        check.data = {"commands": stale.commands, "stale": len(stale.stale), "unversioned": stale.unversioned}
        # Partitions the history calls done whose rows are gone or short: `enqueue` skips them,
        # so the findings above come with the --force commands that refill them (gaps --verify).
        holes = verify_done(spec, calendar, warehouse, list(processors), picked)
        if holes:
            emptied: dict[str, list[dt.date]] = defaultdict(list)
            for h in holes:
                emptied[h.processor].append(h.date)
            by_name["completeness"].data["refill"] = recompute_commands(
                {n: emptied[n] for n in spec.order if n in emptied}, calendar, pipeline_flag)
    else:
        by_name["completeness"].findings.append(Finding(None, "the selection holds no game dates of the schedule"))
    used = sorted({label for d in picked if (label := calendar.season_of(d))})
    return Report(spec.name, list(ranges), list(processors), used, seed, checks, len(picked),
                  time.monotonic() - began)


class _Run:
    def __init__(self, spec: PipelineSpec, warehouse: Warehouse, calendar: Calendar, processors: list[str],
                 picked: list[dt.date]) -> None:
        self.spec, self.warehouse, self.calendar = spec, warehouse, calendar
        self.processors, self.picked = processors, picked
        self.lo, self.hi = picked[0], picked[-1]
        self.picked_set = set(picked)
        self.emptiness = Emptiness(spec, calendar)
        self.criteria: dict[str, Criteria] = {}
        self.tables: dict[str, _Table] = {}
        for name in processors:
            proc = spec.processors[name]
            required = tuple(dict.fromkeys((*proc.required_columns, *(c.name for c in proc.columns if c.required))))
            self.criteria[name] = effective(spec.acceptance, proc.acceptance, tuple(c.name for c in proc.columns),
                                            required)
            self.tables[name] = self._read(proc, self.criteria[name])

    def _read(self, proc: Processor, crit: Criteria) -> _Table:
        out = _Table()
        if not self.warehouse.table_exists(proc.target):
            return out
        cols = ["COUNT(*) AS n"]
        if proc.expect.every_team:
            cols.append(f"COUNT(DISTINCT {proc.expect.every_team}) AS teams")
        cols += [f"COUNTIF({c} IS NULL) AS null_{c}" for c in crit.not_null]
        cols += [f"COUNTIF({_outside(r.column, r.low, r.high)}) AS bad_{r.column}" for r in crit.ranges]
        for r in self.warehouse.query(
                f"SELECT {proc.partition} AS d, {', '.join(cols)} FROM {proc.target} "
                f"WHERE {proc.partition} BETWEEN @lo AND @hi GROUP BY 1", {"lo": self.lo, "hi": self.hi}):
            d = as_date(r["d"])
            out.rows[d] = int(r["n"])
            if proc.expect.every_team:
                out.teams[d] = int(r["teams"])
            for c in crit.not_null:
                if r[f"null_{c}"]:
                    out.nulls[c][d] = int(r[f"null_{c}"])
            for rg in crit.ranges:
                if r[f"bad_{rg.column}"]:
                    out.bad[rg.column][d] = int(r[f"bad_{rg.column}"])
        return out

    def _settled(self, name: str) -> list[dt.date]:
        """Game dates whose output must be complete: the bootstrap dates of lookback processors aside."""
        return [d for d in self.picked if not self.emptiness.may_be_empty(name, d)]

    # -- 1 -----------------------------------------------------------------------------------
    def completeness(self, check: Check) -> None:
        total = present = bootstrap = 0
        for name in self.processors:
            rows = self.tables[name].rows
            by_season: dict[str, list[dt.date]] = defaultdict(list)
            for d in self.picked:
                by_season[str(self.calendar.season_of(d))].append(d)
            for season, days in sorted(by_season.items()):
                have = [d for d in days if rows.get(d, 0) > 0]
                missing = [d for d in days if rows.get(d, 0) == 0 and not self.emptiness.may_be_empty(name, d)]
                allowed = len(days) - len(have) - len(missing)
                total += len(days)
                present += len(have)  # an empty bootstrap date is allowed, never counted as present
                bootstrap += allowed
                check.data.setdefault(name, {})[season] = {"game_dates": len(days), "with_rows": len(have),
                                                          "bootstrap_empty": allowed, "missing": len(missing)}
                if missing:
                    runs = game_date_runs(missing, self.calendar)
                    spans = ", ".join(a.isoformat() if a == b else f"{a}..{b}" for a, b in runs[:EXAMPLES])
                    more = f" and {len(runs) - EXAMPLES} more run(s)" if len(runs) > EXAMPLES else ""
                    check.findings.append(Finding(name, f"{season}: {len(missing)} of {len(days)} game date(s) "
                                                        f"have no rows: {spans}{more}", missing))
            extra = sorted(d for d in rows if d not in self.picked_set and not self.calendar.is_game_date(d)
                           and rows[d] > 0)
            if extra:
                check.findings.append(Finding(name, f"{len(extra)} date(s) without games have rows: "
                                                    f"{', '.join(str(d) for d in extra[:EXAMPLES])}", extra))
        check.figures.append(f"{present} of {total} (processor, game date) partitions present "
                             f"over {len(self.picked)} game dates"
                             + (f"; {bootstrap} bootstrap date(s) empty, as allowed" if bootstrap else ""))

    # -- 2 -----------------------------------------------------------------------------------
    def row_counts(self, check: Check) -> None:
        checked = 0
        for name in self.processors:
            proc, table, crit = self.spec.processors[name], self.tables[name], self.criteria[name]
            settled = [d for d in self._settled(name) if table.rows.get(d, 0) > 0]
            checked += len(settled)
            want = self._expected(proc, settled)
            tol = crit.row_tolerance
            short: list[tuple[dt.date, str]] = []
            for d in settled:
                n, (exp, why) = table.rows[d], want.get(d, (None, ""))
                if exp is not None and n < exp * (1 - tol):
                    short.append((d, f"{d}: {n} rows, {exp} expected ({why})"))
                elif exp is not None and n > exp * (1 + tol):
                    short.append((d, f"{d}: {n} rows, {exp} expected ({why}): duplicates?"))
                elif proc.expect.every_team and table.teams.get(d, 0) < len(self.calendar.teams_on(d)):
                    short.append((d, f"{d}: rows for {table.teams.get(d, 0)} of "
                                     f"{len(self.calendar.teams_on(d))} teams playing"))
            if short:
                check.findings.append(Finding(name, f"{len(short)} date(s) short of the expected rows",
                                              [d for d, _ in short], [m for _, m in short[:EXAMPLES]]))
            outliers = self._outliers(name, settled)
            if outliers:
                check.findings.append(Finding(name, f"{len(outliers)} outlier date(s): rows per game below "
                                                    f"{self.spec.acceptance.outlier_ratio:g} x the season median",
                                              [d for d, _ in outliers], [m for _, m in outliers[:EXAMPLES]]))
            counts = sorted(table.rows[d] for d in settled)
            if counts:
                check.data[name] = {"min": counts[0], "median": statistics.median(counts), "max": counts[-1]}
        check.figures.append(f"{checked} (processor, date) partitions held against `expect:` "
                             f"(row tolerance {self.spec.acceptance.row_tolerance:g}) and the season medians")

    def _expected(self, proc: Processor, days: list[dt.date]) -> dict[dt.date, tuple[int, str]]:
        exp = proc.expect
        if exp.rows_per_game:
            return {d: (exp.rows_per_game * len(self.calendar.games_on(d)), f"{exp.rows_per_game} per game")
                    for d in days}
        if exp.rows_like and days:
            if exp.rows_like in self.tables:
                counts = self.tables[exp.rows_like].rows
            else:
                table, part = _table_of(self.spec, exp.rows_like)
                counts = {} if part is None or not self.warehouse.table_exists(table) else {
                    as_date(r["d"]): int(r["n"]) for r in self.warehouse.query(
                        f"SELECT {part} AS d, COUNT(*) AS n FROM {table} WHERE {part} BETWEEN @lo AND @hi "
                        "GROUP BY 1", {"lo": self.lo, "hi": self.hi})}
            return {d: (counts.get(d, 0), f"one per row of {exp.rows_like}") for d in days}
        return {}

    def _outliers(self, name: str, days: list[dt.date]) -> list[tuple[dt.date, str]]:
        rows = self.tables[name].rows
        per_game = {d: rows[d] / max(len(self.calendar.games_on(d)), 1) for d in days}
        by_season: dict[str | None, list[float]] = defaultdict(list)
        for d, v in per_game.items():
            by_season[self.calendar.season_of(d)].append(v)
        medians = {s: statistics.median(v) for s, v in by_season.items()}
        ratio = self.spec.acceptance.outlier_ratio
        return [(d, f"{d}: {v:.1f} rows per game, season median {medians[self.calendar.season_of(d)]:.1f}")
                for d, v in sorted(per_game.items()) if v < ratio * medians[self.calendar.season_of(d)]]

    # -- 3 -----------------------------------------------------------------------------------
    def success_rate(self, check: Check) -> None:
        latest = self._latest()
        phases: dict[int, Counter[str]] = defaultdict(Counter)
        for name in self.processors:
            proc, crit = self.spec.processors[name], self.criteria[name]
            states = Counter(latest.get((name, d), "never_run") for d in self.picked)
            phases[proc.phase].update(states)
            rate = states[TaskOutcome.success] / len(self.picked)
            check.data[name] = {"phase": proc.phase, "rate": round(rate, 4), "statuses": dict(states)}
            if rate < crit.min_success_rate:
                bad = [d for d in self.picked if latest.get((name, d), "never_run") != TaskOutcome.success]
                other = ", ".join(f"{k} {v}" for k, v in sorted(states.items()) if k != TaskOutcome.success)
                check.findings.append(Finding(name, f"{rate:.1%} of {len(self.picked)} partitions succeeded "
                                                    f"(minimum {crit.min_success_rate:.0%}): {other}", bad))
            stale = [d for d in self.picked if latest.get((name, d)) == "stale_running"]
            if stale:
                check.findings.append(Finding(name, f"{len(stale)} partition(s) whose latest record is a stale "
                                                    "`running` row (its worker is long gone; not a success)", stale))
        for phase, states in sorted(phases.items()):
            total = sum(states.values())
            done = states[TaskOutcome.success]
            check.figures.append(f"phase {phase}: {done} of {total} partitions succeeded ({done / max(total, 1):.1%})")

    def _latest(self) -> dict[tuple[str, dt.date], str]:
        """Latest status per partition; a `running` row older than the stale age is `stale_running`."""
        history = RunHistory.of(self.warehouse, self.spec)
        if not self.warehouse.table_exists(history.table):
            return {}
        rows = self.warehouse.query(
            f"SELECT processor_name, data_date, status, started_at, finished_at, attempt FROM ({history.view_sql()}) "
            "AS h WHERE data_date BETWEEN @lo AND @hi AND history_name IN UNNEST(@procs)",
            {"lo": self.lo, "hi": self.hi, "procs": history.names(self.processors)})
        now = time.time()
        best: dict[tuple[str, dt.date], tuple[tuple[float, int], str]] = {}
        for r in rows:
            key = (str(r["processor_name"]), as_date(r["data_date"]))
            started = stamp(r["started_at"])
            when = stamp(r["finished_at"]) or started or 0.0
            status = str(r["status"])
            if status == "running" and now - (started or when) > DEFAULT_STALE_RUNNING_SECONDS:
                status = "stale_running"
            rank = (when, int(r["attempt"] or 0))
            if key not in best or rank > best[key][0]:
                best[key] = (rank, status)
        return {k: s for k, (_, s) in best.items()}

    # -- 4 -----------------------------------------------------------------------------------
    def quality(self, nulls: Check, ranges: Check) -> None:
        n_cols = n_ranges = 0
        for name in self.processors:
            proc, table, crit = self.spec.processors[name], self.tables[name], self.criteria[name]
            n_cols += len(crit.not_null)
            n_ranges += len(crit.ranges)
            for c in crit.not_null:
                found = {d: n for d, n in table.nulls.get(c, {}).items() if d in self.picked_set}
                if found:
                    nulls.findings.append(Finding(name, f"{proc.target}.{c}: {sum(found.values())} NULL(s) on "
                                                        f"{len(found)} date(s)", sorted(found),
                                                  self._examples(proc, f"{c} IS NULL", sorted(found), c)))
            for rg in crit.ranges:
                found = {d: n for d, n in table.bad.get(rg.column, {}).items() if d in self.picked_set}
                if found:
                    ranges.findings.append(Finding(name, f"{proc.target}.{rg.column}: {sum(found.values())} value(s) "
                                                         f"outside {rg.describe()} on {len(found)} date(s)",
                                                   sorted(found), self._examples(
                                                       proc, _outside(rg.column, rg.low, rg.high), sorted(found),
                                                       rg.column)))
        rows = sum(sum(t.rows.values()) for t in self.tables.values())
        nulls.figures.append(f"{n_cols} required column(s) over {rows} rows")
        ranges.figures.append(f"{n_ranges} column range(s) over {rows} rows")

    def _examples(self, proc: Processor, condition: str, dates: list[dt.date], column: str) -> list[str]:
        key = list(proc.key or (proc.partition,))
        shown = ", ".join(dict.fromkeys([*key, column]))
        found = self.warehouse.query(
            f"SELECT {shown} FROM {proc.target} WHERE {proc.partition} IN UNNEST(@dates) AND ({condition}) "
            f"ORDER BY {', '.join(key)} LIMIT {EXAMPLES}", {"dates": dates})
        return ["(" + ", ".join(str(r[k]) for k in key) + f"): {column} = {r[column]!r}" for r in found]

    def coverage(self, check: Check) -> None:
        for cov in self.spec.acceptance.coverage:
            of, by = self.spec.processors[cov.of], self.spec.processors[cov.by]
            if cov.of not in self.processors and cov.by not in self.processors:
                continue
            if not (self.warehouse.table_exists(of.target) and self.warehouse.table_exists(by.target)):
                check.findings.append(Finding(cov.by, f"{of.target} or {by.target} does not exist"))
                continue
            on = " AND ".join(f"o.{k} = b.{k}" for k in cov.keys)
            days = [d for d in self.picked if not self.emptiness.may_be_empty(cov.by, d)]
            sql = (f"FROM {of.target} AS o LEFT JOIN (SELECT {', '.join(cov.keys)} FROM {by.target} "
                   f"WHERE {by.partition} BETWEEN @lo AND @hi) AS b ON {on} "
                   f"WHERE o.{of.partition} IN UNNEST(@dates) AND b.{cov.keys[0]} IS NULL")
            params = {"lo": self.lo, "hi": self.hi, "dates": days}
            missing = {as_date(r["d"]): int(r["n"]) for r in self.warehouse.query(
                f"SELECT o.{of.partition} AS d, COUNT(*) AS n {sql} GROUP BY 1", params)}
            total = sum(self.tables[cov.of].rows.get(d, 0) for d in days) if cov.of in self.tables else None
            gone = sum(missing.values())
            check.figures.append(f"{cov.by} covers {cov.of}: " + (f"{total - gone} of {total} rows"
                                                                   if total is not None else f"{gone} rows missing")
                                 + f" over {len(days)} game dates (bootstrap dates aside)")
            if missing:
                examples = self.warehouse.query(
                    f"SELECT {', '.join('o.' + k for k in cov.keys)} {sql} ORDER BY 1 LIMIT {EXAMPLES}", params)
                check.findings.append(Finding(cov.by, f"{gone} row(s) of {cov.of} on {len(missing)} date(s) have no "
                                                      f"{cov.by} row", sorted(missing),
                                              ["(" + ", ".join(str(r[k]) for k in cov.keys) + ")" for r in examples]))
        if not check.figures:
            check.figures.append("no coverage criteria for the selected processors")

    def keys(self, check: Check) -> None:
        """Every declared key holds: the selected processors' targets and every raw table with a `key:`."""
        tables: list[tuple[str, str | None, tuple[str, ...], str | None]] = [
            (p.target, p.partition, p.key, p.name) for p in (self.spec.processors[n] for n in self.processors)]
        tables += [(t.name, t.partition, t.key, None) for t in self.spec.raw_tables.values()]
        checked = 0
        for table, partition, key, owner in tables:
            if key:
                checked += 1
                check.findings += _key_findings(self.warehouse, table, partition, key, owner, self.lo, self.hi)
        check.figures.append(f"{checked} table(s) with a declared key checked for repeated keys")

    def spot_checks(self, check: Check, n: int, seed: int) -> None:
        candidates = [(name, d) for name in self.processors for d in self.picked
                      if self.tables[name].rows.get(d, 0) > 0]
        picked = sample_partitions(candidates, n, seed)
        results = [spot_check(self.warehouse, self.spec.processors[p], d) for p, d in picked]
        check.data = {"seed": seed, "sampled": [r.to_json() for r in results]}
        check.figures.append(f"{len(results)} partition(s) recomputed and compared (seed {seed}): "
                             + ", ".join(f"{r.processor}@{r.date}" for r in results))
        for r in results:
            if not r.ok:
                check.findings.append(Finding(r.processor, f"{r.date}: {r.different_rows} row(s) differ from a "
                                                           f"recomputation ({r.stored} stored, {r.recomputed} "
                                                           "recomputed)", [r.date], r.differences))


def _key_findings(warehouse: Warehouse, table: str, partition: str | None, key: tuple[str, ...], owner: str | None,
                  lo: dt.date, hi: dt.date) -> list[Finding]:
    """Keys of `table` held by more than one row (over the selection's span when it is partitioned)."""
    if not key or not warehouse.table_exists(table):
        return []
    where = f"{partition} BETWEEN @lo AND @hi" if partition else "TRUE"
    found = warehouse.query(duplicates_sql(table, partition, key, where), {"lo": lo, "hi": hi})
    if not found:
        return []
    dates = sorted(as_date(r["d"]) for r in found if r["d"] is not None)
    keys_, extra = sum(int(r["dup_keys"]) for r in found), sum(int(r["dup_rows"]) for r in found)
    on = f" on {len(dates)} date(s)" if dates else ""
    return [Finding(owner, describe_duplicates(table, key, keys_, extra, found[0]["dup_example"]) + on, dates,
                    [str(r["dup_example"]) for r in found[:EXAMPLES]])]


def _outside(column: str, low: float | None, high: float | None) -> str:
    parts = [f"{column} < {low!r}"] if low is not None else []
    parts += [f"{column} > {high!r}"] if high is not None else []
    return " OR ".join(parts) if parts else "FALSE"


def _table_of(spec: PipelineSpec, name: str) -> tuple[str, str | None]:
    if name in spec.processors:
        return spec.processors[name].target, spec.processors[name].partition
    raw = spec.raw_tables.get(name)
    return name, raw.partition if raw is not None else None
