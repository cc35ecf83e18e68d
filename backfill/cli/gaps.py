"""`backfill gaps`: (processor, game date) partitions whose latest run did not succeed.

Counted in game dates from the schedule, so off-days, the All-Star break and days outside
every season are never gaps. A date whose latest run is `success` is done; every other date
(never run, or latest run partial / failed / blocked / revoked / cancelled) is a gap, listed
with the reason its latest record gives.
`--stale` lists written partitions that are stale instead (their processor's code changed, or
an upstream partition in their windows was rewritten after them, or is stale itself) and the
`enqueue` commands that recompute exactly those and their dependents.
Exit codes: 0 no gaps, 1 gaps found, 2 bad input, 3 cannot open the warehouse.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections import Counter
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from backfill.calendar import Calendar
from backfill.cli.context import CliContext
from backfill.cli.selection import _csv, parse_phases, parse_ranges, parse_season_types, reading_options, verify_option
from backfill.errors import BadInput, PlanError, ProblemsFound
from backfill.outcome import ErrorCategory, TaskOutcome
from backfill.planner.flags import selection_flags
from backfill.runhistory import RunHistory
from backfill.warehouse import Warehouse

FIRST_DATES = 5  # dates shown per (processor, season) in the human output
NEVER_RUN = "never_run"  # the counts key for gaps without any run-history row


def find_gaps(warehouse: Warehouse, spec: Any, ranges: tuple[tuple[dt.date, dt.date], ...],
              names: tuple[str, ...], seasons: frozenset[str] | None,
              season_types: frozenset[str] | None = None, verify: bool = False,
              pipeline: str | None = None, verify_existing: bool = False) -> dict[str, Any]:
    """The `--json` document: every gap with its season and latest status, and the counts.

    `verify`: also the partitions whose latest run succeeded but whose rows are gone or short
    (`backfill.validate.verify`), listed as gaps with `emptied: true`. Partitions whose latest
    success the processors' own code wrote (`history_names`) are done and counted as adopted;
    `verify_existing` holds them to `expect:` first and lists the ones that fail as gaps.
    """
    calendar = Calendar.from_warehouse(warehouse, spec.schedule_table)
    if not calendar.seasons:
        raise BadInput(f"the schedule table {spec.schedule_table} is empty",
                       hint="load raw data first: `backfill data sample` or `backfill data import-nba DIR`")
    if seasons:
        unknown = sorted(seasons - set(calendar.seasons))
        if unknown:
            raise PlanError(f"unknown season(s) {', '.join(unknown)}: the schedule has {', '.join(calendar.seasons)}")
    history = RunHistory.of(warehouse, spec)
    found: set[tuple[str, dt.date]] = set()
    game_dates: set[dt.date] = set()
    days: set[dt.date] = set()
    for lo, hi in ranges:
        found.update(history.gaps(calendar, names, lo, hi))
        game_dates.update(calendar.game_dates_between(lo, hi))
        days.update(lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1))
    if seasons or season_types:
        found = {(p, d) for p, d in found if calendar.selected(d, seasons, season_types)}
        game_dates = {d for d in game_dates if calendar.selected(d, seasons, season_types)}
    lo = min(a for a, _ in ranges)
    hi = max(b for _, b in ranges)
    adopted = {(p, d) for p, d in history.adopted(lo, hi, names) if d in game_dates} if history.aliases else set()
    failing: dict[tuple[str, dt.date], str] = {}
    if verify_existing and adopted:
        from backfill.cli.selection import failing_adopted

        failing = failing_adopted(warehouse, spec, calendar, frozenset(adopted), ranges)
        found.update(failing)
        adopted -= failing.keys()
    latest = {(r["processor_name"], r["data_date"]): r for r in history.latest(lo, hi, names)} if found else {}
    order = {n: i for i, n in enumerate(names)}
    rows = [{"processor": p, "date": d.isoformat(), "season": calendar.season_of(d),
             "last_status": (latest.get((p, d)) or {}).get("status"),
             "reason": (f"adopted success fails its checks: {failing[(p, d)]}" if (p, d) in failing
                        else _reason(latest.get((p, d)))), "emptied": False}
            for p, d in sorted(found, key=lambda pd: (order[pd[0]], pd[1]))]
    emptied: list[dict[str, Any]] = []
    if verify:
        from backfill.validate.verify import verify_done

        emptied = [{"processor": h.processor, "date": h.date.isoformat(), "season": calendar.season_of(h.date),
                    "last_status": TaskOutcome.success, "reason": h.reason, "emptied": True, "rows": h.rows,
                    "recorded_rows": h.recorded}
                   for h in verify_done(spec, calendar, warehouse, names, sorted(game_dates))]
        found |= {(r["processor"], dt.date.fromisoformat(r["date"])) for r in emptied}
        rows = sorted(rows + emptied, key=lambda r: (order[str(r["processor"])], str(r["date"])))
    by_season = Counter(str(r["season"]) for r in rows)
    by_status = Counter(r["last_status"] or NEVER_RUN for r in rows)
    by_processor = {n: 0 for n in names}
    for p, _ in found:
        by_processor[p] += 1
    upstream = _upstream_holes(rows, history, names)
    counts = {
        "gaps": len(rows),
        "game_dates": len(game_dates),
        "partitions_checked": len(game_dates) * len(names),
        "adopted": len(adopted),
        "adopted_failing_checks": len(failing),
        "days_without_games": len(days) - len({d for d in days if calendar.is_game_date(d)}),
        "by_processor": by_processor,
        "by_season": dict(sorted(by_season.items())),
        "by_last_status": dict(sorted(by_status.items())),
        "emptied": len(emptied),
    }
    return {"gaps": rows, "counts": counts, "upstream": upstream,
            "refill": _refill_commands(spec, calendar, emptied, pipeline)}


def _refill_commands(spec: Any, calendar: Calendar, emptied: list[dict[str, Any]],
                     pipeline: str | None) -> list[str]:
    """`enqueue --force --wait` commands that rewrite exactly the emptied partitions, in pipeline order
    (`enqueue` alone skips them: their latest run says success)."""
    from backfill.validate.staleness import recompute_commands

    per: dict[str, list[dt.date]] = {}
    for r in emptied:
        per.setdefault(r["processor"], []).append(dt.date.fromisoformat(r["date"]))
    return recompute_commands({n: per[n] for n in spec.order if n in per}, calendar, pipeline) if per else []


_PARTITION = re.compile(r"\b([a-z_][a-z0-9_]*)@(\d{4}-\d{2}-\d{2})\b")


def _upstream_holes(rows: list[dict[str, Any]], history: RunHistory, names: tuple[str, ...]) -> list[dict[str, str]]:
    """Upstream partitions that `dependency_gap` failures name and that no plain enqueue would redo.

    Their latest run says `success` (so `enqueue` skips them), yet the check found them missing or
    empty (rows deleted after the fact): only `--force` on them fills the hole.
    """
    named = {(m.group(1), dt.date.fromisoformat(m.group(2))) for r in rows
             if ErrorCategory.dependency_gap in r["reason"] for m in _PARTITION.finditer(r["reason"])}
    named = {(p, d) for p, d in named if p not in names}
    if not named:
        return []
    done = history.completed(min(d for _, d in named), max(d for _, d in named), {p for p, _ in named})
    return [{"processor": p, "date": d.isoformat()} for p, d in sorted(named) if (p, d) in done]


def _reason(record: dict[str, Any] | None) -> str:
    if record is None:
        return "never ran"
    category, message = record.get("error_category"), record.get("error_message")
    text = ": ".join(str(x) for x in (category, message) if x)
    return f"{record['status']}: {text}" if text else str(record["status"])


def render_gaps(result: dict[str, Any], names: tuple[str, ...], console: Console) -> None:
    counts = result["counts"]
    console.print(f"[bold]Gaps[/bold]: {counts['gaps']} of {counts['partitions_checked']} (processor, game date) "
                  f"partitions over {counts['game_dates']} game dates "
                  f"({counts['days_without_games']} day(s) without games are never gaps)")
    if counts.get("adopted") or counts.get("adopted_failing_checks"):
        console.print(f"{counts['adopted']} done partition(s) adopted from the processors' own history rows "
                      "(history_names)" + (f"; {counts['adopted_failing_checks']} adopted partition(s) fail their "
                                           "expect: checks and are gaps" if counts.get("adopted_failing_checks")
                                           else ""))
    per: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in result["gaps"]:
        per.setdefault(r["processor"], {}).setdefault(str(r["season"]), []).append(r)
    for name in names:
        seasons = per.get(name)
        if not seasons:
            console.print(f"{name}: no gaps")
            continue
        total = sum(len(v) for v in seasons.values())
        table = Table(title=f"{name}: {total} gap(s)", title_justify="left", show_edge=False)
        table.add_column("season")
        table.add_column("gaps", justify="right")
        table.add_column("last status")
        table.add_column("first dates")
        table.add_column("first reason", overflow="fold")
        for season in sorted(seasons):
            rows = seasons[season]
            status = Counter(r["last_status"] or NEVER_RUN for r in rows)
            more = f" (+{len(rows) - FIRST_DATES} more)" if len(rows) > FIRST_DATES else ""
            table.add_row(season, str(len(rows)), ", ".join(f"{k} {v}" for k, v in sorted(status.items())),
                          ", ".join(r["date"] for r in rows[:FIRST_DATES]) + more, rows[0]["reason"][:160])
        console.print(table)


def report_stale(warehouse: Warehouse, spec: Any, ranges: tuple[tuple[dt.date, dt.date], ...],
                 names: tuple[str, ...], seasons: frozenset[str] | None, pipeline: str | None,
                 as_json: bool, season_types: frozenset[str] | None = None) -> None:
    """`gaps --stale`: print the stale partitions; exit 1 with the recompute commands when there are any."""
    from backfill.validate.render import render_stale
    from backfill.validate.staleness import find_stale

    calendar = Calendar.from_warehouse(warehouse, spec.schedule_table)
    if seasons:
        unknown = sorted(seasons - set(calendar.seasons))
        if unknown:
            raise PlanError(f"unknown season(s) {', '.join(unknown)}: the schedule has {', '.join(calendar.seasons)}")
    report = find_stale(spec, calendar, warehouse, names, ranges, seasons, pipeline, season_types)
    if as_json:
        click.echo(json.dumps(report.to_json(calendar)))
    else:
        render_stale(report, names, calendar, Console())
    if report.stale:
        raise ProblemsFound(f"{len(report.stale)} stale partition(s) in "
                            f"{sum(1 for n in report.by_processor.values() if n)} processor(s)",
                            hint="recompute them with `" + " && ".join(report.commands) + "`")


@click.command("gaps")
@reading_options
@click.option("--json", "as_json", is_flag=True, help="Print the gaps as JSON (shape in docs/cli.md).")
@click.option("--stale", is_flag=True, help="List stale partitions (code or upstream changed since written) "
                                            "and the enqueue commands that recompute them.")
@click.option("--verify", is_flag=True, help="Also count each done partition's rows: a partition whose latest run "
                                             "succeeded but is empty or short now is a gap, refilled with --force.")
@verify_option
@click.pass_obj
def gaps(obj: CliContext, pipeline: str | None, start: str | None, end: str | None, ranges: tuple[str, ...],
         phases: str | None, processors: str | None, seasons: str | None, season_types: str | None, as_json: bool,
         stale: bool, verify: bool, verify_existing: bool) -> None:
    """(processor, game date) partitions with no successful latest run; exit 1 when there are any.

    Off-days and the All-Star break are never gaps. Fill them by enqueueing the same selection:
    the run history makes `enqueue` skip what already succeeded.
    """
    spec = obj.spec(pipeline)
    parsed = parse_ranges(start, end, ranges)
    phase_set = parse_phases(phases)
    names = spec.select(set(phase_set) if phase_set else None, set(_csv(processors, "--processors")) or None)
    types = parse_season_types(season_types)
    chosen = frozenset(_csv(seasons, "--seasons")) or None
    warehouse, close = obj.reader()
    if stale:
        try:
            report_stale(warehouse, spec, parsed, names, chosen, pipeline, as_json, types)
        finally:
            if close:
                warehouse.close()
        return
    try:
        result = find_gaps(warehouse, spec, parsed, names, chosen, types, verify, pipeline, verify_existing)
    finally:
        if close:
            warehouse.close()
    if as_json:
        click.echo(json.dumps(result))
    else:
        render_gaps(result, names, Console())
    n = result["counts"]["gaps"]
    if n:
        scoped = functools.partial(selection_flags, seasons=chosen or (), season_types=types or (), pipeline=pipeline)

        procs = sorted({r["processor"] for r in result["gaps"]}, key=names.index)
        plain = sorted({r["processor"] for r in result["gaps"] if not r["emptied"]}, key=names.index)
        # --with-upstream: a gap whose windows read upstream partitions that never ran (a week
        # enqueued without its upstream) fails `dependency_gap` again without them.
        again = " --verify-existing" if result["counts"]["adopted_failing_checks"] else ""
        fill = (f"`backfill enqueue {scoped(parsed, processors=plain)} --with-upstream{again}`"
                if plain else "")
        holes = result["upstream"]
        if holes:
            dates = sorted({h["date"] for h in holes})
            spans = [(d, d) for d in dates] if len(dates) <= 10 else [(dates[0], dates[-1])]
            ups = sorted({h["processor"] for h in holes})
            fill = (f"refill their upstream first with `backfill enqueue "
                    f"{selection_flags(spans, processors=ups, pipeline=pipeline)} --force` "
                    f"(its run history says success, its rows are missing), then {fill} or `backfill retry RUN_ID`")
        elif fill:
            fill = f"fill them with {fill}"
        if result["refill"]:
            # Done in the history, empty in the table: only --force rewrites them, and what read
            # them is stale afterwards. The same selection as this command's (its processors resolved).
            selection = scoped(parsed, processors=names if processors else (), phases=phase_set or ())
            refill = ("refill the emptied partitions with `" + "` then `".join(result["refill"])
                      + f"`, then recompute what read them: `backfill gaps --stale {selection}`")
            fill = f"{refill}; {fill}" if fill else refill
        raise ProblemsFound(f"{n} gap(s) in {len(procs)} processor(s)", hint=fill)
