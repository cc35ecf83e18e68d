"""Read one or more runs into report facts: Redis for live state, the warehouse for the durable record.

Redis knows a run's plan (every task, pending ones included), the latest result of each task,
the re-sends and heals, the alert digest and throttle changes; the run history knows every
attempt of every date, including the failures a retry later fixed. A run Redis has lost (a
flush, a new machine) is still reported from the run ledger and the history alone, and says so.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from backfill.calendar import Calendar, as_date
from backfill.engine import ledger_table, trigger_names
from backfill.errors import BadInput
from backfill.outcome import ErrorCategory, TaskOutcome
from backfill.planner.flags import selection_flags
from backfill.report.facts import (
    NEVER_RAN,
    STALE,
    SUCCEEDED,
    Campaign,
    Coverage,
    RunFacts,
    Selection,
    TaskFact,
    merged_ranges,
    report_status,
)
from backfill.report.validations import Validation, load_validations, record_validation
from backfill.runhistory import RunHistory, stamp
from backfill.spec import PipelineSpec
from backfill.state import RedisStateStore, RunStatus, TaskStatus
from backfill.state.verdict import failed_in_rows, run_verdict
from backfill.warehouse import Warehouse

_WORST = (TaskOutcome.failed, TaskOutcome.revoked, TaskOutcome.blocked, TaskOutcome.partial, TaskOutcome.cancelled,
          TaskOutcome.skipped, SUCCEEDED)
# A partition's heat-map class from its latest run-history status (a revoked one shows as failed).
_CELL: dict[str, str] = {TaskOutcome.success: SUCCEEDED, TaskOutcome.partial: TaskOutcome.partial,
                         TaskOutcome.failed: TaskOutcome.failed, TaskOutcome.revoked: TaskOutcome.failed,
                         TaskOutcome.blocked: TaskOutcome.blocked}
_UNSETTLED_BAD = (TaskOutcome.failed, TaskOutcome.blocked, TaskOutcome.revoked, TaskOutcome.partial)


def runs_since(store: RedisStateStore | None, warehouse: Warehouse, history_table: str, since: dt.date) -> list[str]:
    """Run ids created on or after `since` (UTC), from Redis and from the durable run ledger."""
    cutoff = dt.datetime.combine(since, dt.time(), dt.UTC).timestamp()
    found: dict[str, float] = {}
    if store is not None:
        found.update({r.run_id: r.created_at for r in store.list_runs() if r.created_at >= cutoff})
    table = ledger_table(history_table)
    if warehouse.table_exists(table):
        for r in warehouse.query(f"SELECT run_id, created_at FROM {table}"):
            at = stamp(r["created_at"])
            if at is not None and at >= cutoff:
                found.setdefault(str(r["run_id"]), at)
    return [k for k, _ in sorted(found.items(), key=lambda kv: kv[1])]


def history_of(warehouse: Warehouse, history_table: str, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Every run-history row (all attempts) of these runs, in the tool's canonical names."""
    if not run_ids or not warehouse.table_exists(history_table):
        return []
    view = RunHistory(warehouse, history_table).view_sql()
    return warehouse.query(f"SELECT * FROM ({view}) AS h WHERE run_id IN UNNEST(@ids)", {"ids": list(run_ids)})


def _warnings(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    parsed = json.loads(value) if isinstance(value, str) else value
    return [str(w) for w in parsed] if isinstance(parsed, list) else [str(parsed)]


def _attempt_trail(rows: Sequence[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """task id -> attempt -> {status (worst over its dates), category, message, at}."""
    out: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        status = report_status(str(r["status"]))
        a = out[str(r["task_id"])].setdefault(int(r["attempt"] or 0), {
            "attempt": int(r["attempt"] or 0), "status": status, "category": r["error_category"],
            "message": r["error_message"], "at": stamp(r["finished_at"]), "started": stamp(r["started_at"]),
            "rows": 0, "warnings": []})
        if _WORST.index(status) < _WORST.index(a["status"]):
            a.update(status=status, category=r["error_category"], message=r["error_message"])
        a["rows"] += int(r["records_processed"] or 0)
        a["warnings"] += [w for w in _warnings(r["warnings"]) if w not in a["warnings"]]
    return out


def _earlier_failures(trail: dict[int, dict[str, Any]], final_attempt: int) -> list[dict[str, Any]]:
    return [{"attempt": a["attempt"], "status": a["status"], "category": a["category"], "message": a["message"],
             "at": a["at"]} for n, a in sorted(trail.items(), key=lambda kv: (kv[1]["at"] or 0, kv[0]))
            if a["status"] in _UNSETTLED_BAD and n != final_attempt]


def _from_redis(store: RedisStateStore, run_id: str, rows: list[dict[str, Any]], settings: Any) -> RunFacts | None:
    run = store.get_run(run_id)
    if run is None:
        return None
    tasks = store.tasks(run_id)
    states = store.states(run_id)
    results = store.results(run_id)
    attempts = store.attempts(run_id)
    started = store.started_at(run_id)
    causes = store.blocked_by(run_id, [i for i, s in states.items() if s is TaskStatus.blocked])
    trail = _attempt_trail(rows)
    facts: list[TaskFact] = []
    for tid, task in tasks.items():
        state = states.get(tid, TaskStatus.pending)
        res = results.get(tid) or {}
        status = report_status(state)
        category, message = res.get("error_category"), res.get("error_message")
        if state is TaskStatus.blocked:
            category, message = ErrorCategory.dependency_gap, f"blocked: upstream {causes.get(tid, 'task')} failed"
        elif state is TaskStatus.revoked:
            category, message = ErrorCategory.revoked, "revoked through Celery (control revoke, Flower or the API)"
        attempt = int(res.get("attempt") or attempts.get(tid, 0))
        facts.append(TaskFact(
            id=tid, processor=task.processor, phase=task.phase, season=task.season, wave=task.wave,
            dates=[d.isoformat() for d in task.dates], status=status, attempts=attempts.get(tid, 0),
            started_at=stamp(res.get("started_at")) or started.get(tid),
            finished_at=stamp(res.get("finished_at")), rows=int(res.get("rows") or 0),
            error_category=category, error_message=message, warnings=[str(w) for w in res.get("warnings") or []],
            estimate_seconds=task.estimate_seconds,
            failed_attempts=_earlier_failures(trail.get(tid, {}), attempt if state.finished else -1)))
    facts.sort(key=lambda t: (t.wave, t.phase, t.processor, t.dates[0] if t.dates else ""))
    out = RunFacts(run_id=run_id, pipeline=run.pipeline, request=run.request, status=run.status.value,
                   source="redis", created_at=run.created_at, finished_at=run.finished_at, seq=run.seq,
                   alerts=run.alerts, strict=run.strict, resent=run.resent, healed=run.healed,
                   heal_reason=run.heal_reason, waves=run.waves, tasks=facts)
    if out.status == RunStatus.succeeded and any(t.status == TaskOutcome.partial for t in facts):
        out.status = RunStatus.partial
    _live_extras(store, out, settings)
    return out


def _live_extras(store: RedisStateStore, run: RunFacts, settings: Any) -> None:
    """Throttle changes during the run, the alert digest and what was sent, the trigger pauses."""
    from backfill.throttle import Throttle
    from backfill.triggers import Triggers

    end = run.ended() or dt.datetime.now(dt.UTC).timestamp()
    events = Throttle(store.client, "warehouse", initial_limit=1).events()
    run.throttle = [e for e in events if run.created_at - 1 <= float(e["at"]) <= end + 1]
    if settings is not None:
        from backfill.alerts.notify import Notifier, alert_status

        run.digest = Notifier(store, settings).digest(run.run_id).to_json()
        run.alert_status = alert_status(store, run.run_id)
    live = {(row["name"], lease["holder"]): lease["until"] for row in Triggers(store.client).status()
            for lease in row["leases"]}
    phases = {t.phase for t in run.tasks}
    from backfill.planner.model import Task

    names = trigger_names([Task("", "", p, "", (), (), False, 0, 0.0) for p in phases])
    run.triggers = [{"trigger": n, "paused_at": run.created_at,
                     "released_at": None if (n, run.run_id) in live else run.finished_at,
                     "held_until": live.get((n, run.run_id))} for n in names]


def _from_history(warehouse: Warehouse, history_table: str, run_id: str, rows: list[dict[str, Any]]) -> RunFacts | None:
    table = ledger_table(history_table)
    ledger = (warehouse.query(f"SELECT * FROM {table} WHERE run_id = @run_id", {"run_id": run_id})
              if warehouse.table_exists(table) else [])
    if not ledger and not rows:
        return None
    trail = _attempt_trail(rows)
    meta: dict[str, dict[str, Any]] = {}
    for r in rows:
        m = meta.setdefault(str(r["task_id"]), {"processor": r["processor_name"], "phase": int(r["phase_number"] or 0),
                                                "season": str(r["season"] or ""), "wave": int(r["wave"] or 0),
                                                "dates": set()})
        m["dates"].add(as_date(r["data_date"]).isoformat())
    facts = []
    for tid, m in meta.items():
        attempts = trail[tid]
        last = max(attempts.values(), key=lambda a: (a["at"] or 0, a["attempt"]))
        facts.append(TaskFact(id=tid, processor=m["processor"], phase=m["phase"], season=m["season"], wave=m["wave"],
                              dates=sorted(m["dates"]), status=last["status"], attempts=max(attempts),
                              started_at=last["started"], finished_at=last["at"], rows=last["rows"],
                              error_category=last["category"], error_message=last["message"],
                              warnings=last["warnings"], failed_attempts=_earlier_failures(attempts, last["attempt"])))
    facts.sort(key=lambda t: (t.wave, t.phase, t.processor, t.dates[0] if t.dates else ""))
    row = ledger[0] if ledger else {}
    request = row.get("request") or {}
    request = json.loads(request) if isinstance(request, str) else request
    starts = [t.started_at for t in facts if t.started_at is not None]
    created = stamp(row.get("created_at")) or (min(starts) if starts else 0.0)
    ends = [t.finished_at for t in facts if t.finished_at is not None]
    status: str = _history_verdict(facts, rows) if facts else "unknown"
    return RunFacts(run_id=run_id, pipeline=str(row.get("pipeline") or ""), request=dict(request), status=status,
                    source="history", created_at=created, finished_at=max(ends) if ends else None,
                    alerts=str(row.get("alerts") or "digest"), strict=bool(row.get("strict", True)),
                    waves=1 + max((t.wave for t in facts), default=-1), tasks=facts)


def _history_verdict(facts: Sequence[TaskFact], rows: Sequence[dict[str, Any]]) -> RunStatus:
    """The run's status from its run-history rows, by the rule `finish` applies (`run_verdict`): the
    failed dates of each task's last attempt, and what each blocked task names as its cause."""
    final: dict[str, int] = {}
    for r in rows:
        tid = str(r["task_id"])
        final[tid] = max(final.get(tid, 0), int(r["attempt"] or 0))
    failed_cats: dict[str, list[object]] = defaultdict(list)
    for r in rows:
        tid = str(r["task_id"])
        if int(r["attempt"] or 0) == final.get(tid) and TaskOutcome.parse(r["status"], TaskOutcome.failed) \
                is TaskOutcome.failed:
            failed_cats[tid].append(r["error_category"])
    in_rows = [t.id for t in facts if t.status == TaskOutcome.failed and failed_in_rows(failed_cats.get(t.id, []))]
    causes = {t.id: m.group(1) for t in facts if t.status == TaskOutcome.blocked
              and (m := _BLOCKED_BY.search(str(t.error_message or "")))}
    return run_verdict({t.id: t.status for t in facts}, in_rows, causes)


# How a blocked task's run-history row names the task that blocked it (`engine.history`).
_BLOCKED_BY = re.compile(r"upstream (\S+) failed")


def collect_run(store: RedisStateStore | None, warehouse: Warehouse, history_table: str, run_id: str,
                rows: list[dict[str, Any]], settings: Any = None) -> RunFacts:
    found = _from_redis(store, run_id, rows, settings) if store is not None else None
    found = found or _from_history(warehouse, history_table, run_id, rows)
    if found is None:
        raise BadInput(f"no run {run_id} in Redis, the run ledger or the run history",
                       hint="check the id with `backfill runs`")
    return found


def coverage(spec: PipelineSpec, calendar: Calendar, warehouse: Warehouse, runs: Sequence[RunFacts],
             pipeline_flag: str | None = None) -> Coverage:
    """Latest status of every (processor, game date) the runs selected, stale partitions told apart."""
    from backfill.validate.staleness import find_stale

    wanted: dict[str, set[dt.date]] = defaultdict(set)
    for run in runs:
        req = run.request
        names = spec.select(set(req["phases"]) if req.get("phases") else None,
                            set(req["processors"]) if req.get("processors") else None)
        days = {d for a, b in req.get("ranges") or [] for d in
                calendar.game_dates_between(dt.date.fromisoformat(a), dt.date.fromisoformat(b))
                if calendar.selected(d, req.get("seasons"), req.get("season_types"))}
        for n in names:
            wanted[n] |= days
    processors = [n for n in spec.order if n in wanted]
    all_days = sorted(set().union(*wanted.values())) if wanted else []
    cells: dict[tuple[str, str], str] = {}
    detail: dict[tuple[str, str], str] = {}
    if not all_days:
        return Coverage(processors, [], cells, detail)
    latest = {(r["processor_name"], as_date(r["data_date"])): r
              for r in RunHistory.of(warehouse, spec).latest(all_days[0], all_days[-1], processors)}
    ranges = merged_ranges((d, d) for d in all_days)
    stale = {(s.processor, s.date): s for s in find_stale(spec, calendar, warehouse, processors, ranges,
                                                          pipeline_flag=pipeline_flag).stale}
    for name in processors:
        for day in sorted(wanted[name]):
            key = (name, day.isoformat())
            row = latest.get((name, day))
            if row is None:
                cells[key] = NEVER_RAN
                continue
            status = str(row["status"])
            cls = _CELL.get(status, NEVER_RAN)
            if cls == SUCCEEDED and (name, day) in stale:
                cls = STALE
                detail[key] = "; ".join(stale[(name, day)].reasons)
            elif cls != SUCCEEDED:
                detail[key] = f"{status}: {row['error_category'] or ''} {row['error_message'] or ''}".strip()
            cells[key] = cls
    return Coverage(processors, [d.isoformat() for d in all_days], cells, detail)


def issues_encountered(rows: Sequence[dict[str, Any]], cov: Coverage | None) -> list[dict[str, Any]]:
    """Every (category, processor) that failed, blocked or fell short on some date during the
    campaign, and how it ended: dates fixed since (by which run) and dates still open."""
    bad: dict[tuple[str, str], dict[str, Any]] = {}
    last_ok: dict[tuple[str, str], tuple[float, str]] = {}
    for r in rows:
        key = (str(r["processor_name"]), as_date(r["data_date"]).isoformat())
        status = str(r["status"])
        at = stamp(r["finished_at"]) or 0.0
        if status == TaskOutcome.success:
            if at >= last_ok.get(key, (0.0, ""))[0]:
                last_ok[key] = (at, str(r["run_id"]))
        elif status in _UNSETTLED_BAD:
            g = bad.setdefault((str(r["error_category"] or status), key[0]),
                               {"dates": {}, "example": r["error_message"], "runs": set()})
            g["dates"][key[1]] = max(g["dates"].get(key[1], 0.0), at)
            g["runs"].add(str(r["run_id"]))
    out = []
    for (category, processor), g in sorted(bad.items()):
        fixed_by: dict[str, int] = defaultdict(int)
        still = 0
        for day, failed_at in g["dates"].items():
            ok = last_ok.get((processor, day))
            now_cls = cov.cells.get((processor, day)) if cov else None
            if ok is not None and ok[0] >= failed_at and now_cls in (None, SUCCEEDED, STALE):
                fixed_by[ok[1]] += 1
            else:
                still += 1
        days = sorted(g["dates"])
        out.append({"category": category, "processor": processor, "dates": len(days), "first": days[0],
                    "last": days[-1], "in_runs": sorted(g["runs"]), "resolved_by": dict(sorted(fixed_by.items())),
                    "open": still, "example": g["example"]})
    return out


def selections(spec: PipelineSpec, runs: Sequence[RunFacts], calendar: Calendar | None = None,
               pipeline_flag: str | None = None) -> list[Selection]:
    """The runs' selections, one per distinct set of processors, seasons and season types,
    each with its merged ranges.

    A Phase 3 run over the season start and a Phase 3 + 4 run over the test week are two
    selections: validating or filling their cross product would report Phase 4 of the season
    start, which nobody asked for, as missing. Likewise a `--seasons 2022-23` run over a range
    that spans two seasons selects that season only, and its flags say so.
    """
    groups: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], list[tuple[dt.date, dt.date]]] = {}
    for run in runs:
        req = run.request
        names = spec.select(set(req["phases"]) if req.get("phases") else None,
                            set(req["processors"]) if req.get("processors") else None)
        key = (tuple(names), tuple(sorted(req.get("seasons") or [])), tuple(sorted(req.get("season_types") or [])))
        groups.setdefault(key, []).extend(
            (dt.date.fromisoformat(a), dt.date.fromisoformat(b)) for a, b in req.get("ranges") or [])
    out = []
    for (names, seasons, types), ranges in groups.items():
        merged = merged_ranges(ranges)
        phases = {spec.processors[n].phase for n in names}
        whole_phases = set(spec.select(phases)) == set(names)
        flags = selection_flags(merged, processors=() if whole_phases else names, phases=phases, seasons=seasons,
                                season_types=types, pipeline=pipeline_flag)
        days = [d for a, b in merged for d in calendar.game_dates_between(a, b)
                if calendar.selected(d, seasons, types)] if calendar is not None else []
        touched = sorted({s for d in days if (s := calendar.season_of(d))}) if calendar is not None else list(seasons)
        out.append(Selection(list(names), merged, flags, list(seasons), list(types), touched,
                             frozenset(d.isoformat() for d in days)))
    return out


def latest_validation(campaign: Campaign, sel: Selection) -> Validation | None:
    """The newest validation that covers the selection: its processors, every date of its ranges
    and every season it has game dates in (a validation of one season says nothing of another)."""
    fits = [v for v in campaign.validations if set(sel.processors) <= set(v.processors) and v.covers(sel.ranges)
            and set(sel.touched) <= set(v.seasons)]
    return fits[-1] if fits else None


def next_commands(campaign: Campaign) -> list[tuple[str, str]]:
    """The commands that fill what the log finds missing, in the order to run them."""
    out: list[tuple[str, str]] = []
    for run in campaign.runs:
        if run.status == RunStatus.running:
            out.append((f"run {run.run_id} is still running", f"backfill status {run.run_id} --watch"))
        elif run.status == RunStatus.paused:
            out.append((f"run {run.run_id} is paused (`backfill status {run.run_id}` says why)",
                        f"backfill resume {run.run_id} --wait"))
        elif (run.source == "redis" and run.status in (RunStatus.failed, RunStatus.partial)
              and not _upstream_outside(run)):
            out.append((f"run {run.run_id} ended {run.status}: rerun its failed, blocked and partial tasks after "
                        "fixing the cause", f"backfill retry {run.run_id} --wait"))
    cov = campaign.coverage
    running = any(r.status in (RunStatus.running, RunStatus.paused) for r in campaign.runs)
    last_end = max((r.ended() or r.created_at for r in campaign.runs), default=0.0)
    for sel in campaign.selections:
        chosen = set(sel.processors)
        cells = {k: c for k, c in (cov.cells.items() if cov else []) if k[0] in chosen
                 and (k[1] in sel.days if sel.days else any(a.isoformat() <= k[1] <= b.isoformat()
                                                           for a, b in sel.ranges))}
        missing = [k for k, c in cells.items() if c not in (SUCCEEDED, STALE)]
        if missing and not running:
            out.append((f"{len(missing)} partition(s) of the selection are not succeeded: list them",
                        f"backfill gaps {sel.flags}"))
            # --with-upstream: a date whose windows read upstream partitions that never ran (a
            # strict-gap week) fails again without them; with them done it adds nothing.
            out.append(("enqueue the same selection and the upstream partitions it reads that are not done: the "
                        "run history skips what already succeeded",
                        f"backfill enqueue {sel.flags} --with-upstream --wait"))
        if any(c == STALE for c in cells.values()):
            out.append(("stale partitions (code or upstream changed after they were written): the commands "
                        "that recompute exactly them", f"backfill gaps --stale {sel.flags}"))
        v = latest_validation(campaign, sel)
        if v is None or v.validated_at.timestamp() < last_end or not v.passed:
            why = ("no validation covers this selection since the last run finished"
                   if v is None or v.validated_at.timestamp() < last_end
                   else "the latest validation of this selection failed: fix what it found, then validate again")
            out.append((why, f"backfill validate {sel.flags}"))
    return out


def _upstream_outside(run: RunFacts) -> bool:
    """The run failed on upstream partitions it did not plan (`dependency_gap`): a `retry` reruns
    the same tasks against the same missing inputs and fails again, so the log suggests an
    `enqueue --with-upstream` of the selection instead."""
    return any(t.error_category == ErrorCategory.dependency_gap for t in run.tasks if t.status == TaskOutcome.failed)


def collect_campaign(run_ids: Sequence[str], *, store: RedisStateStore | None, warehouse: Warehouse,
                     spec_for: Callable[[str], PipelineSpec], default_spec: PipelineSpec, settings: Any = None,
                     warehouse_label: str = "", pipeline_flag: str | None = None,
                     validate: bool = False) -> Campaign:
    """The facts of every named run (oldest first), the coverage of their selection, validations,
    the problems met and how they ended, and the commands that fill what is missing.

    `validate`: run `backfill validate`'s suite over the runs' selection first and record its
    outcome in the validation ledger, so this log (and every later one) carries the verdict.
    """
    history_table = default_spec.run_history_table
    rows = history_of(warehouse, history_table, run_ids)
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_run[str(r["run_id"])].append(r)
    runs = sorted((collect_run(store, warehouse, history_table, rid, by_run[rid], settings)
                   for rid in dict.fromkeys(run_ids)), key=lambda r: r.created_at)
    campaign = Campaign(runs=runs, generated_at=dt.datetime.now(dt.UTC).timestamp(), warehouse=warehouse_label)
    spec = default_spec
    if runs and runs[0].pipeline:
        try:
            spec = spec_for(runs[0].pipeline)
        except BadInput:
            campaign.coverage_note = f"pipeline {runs[0].pipeline} not found here; coverage uses the default pipeline"
    calendar = Calendar.from_warehouse(warehouse, spec.schedule_table)
    if calendar.seasons:
        campaign.coverage = coverage(spec, calendar, warehouse, runs, pipeline_flag)
    else:
        campaign.coverage_note = f"no schedule in {spec.schedule_table}: coverage not computed"
    ranges = campaign.ranges()
    campaign.selections = selections(spec, runs, calendar if calendar.seasons else None, pipeline_flag)
    if validate and calendar.seasons:
        from backfill.validate.suite import validate as run_validation

        for sel in campaign.selections:
            found = run_validation(spec, warehouse, calendar, sel.processors, sel.ranges, sel.seasons or None,
                                   pipeline_flag=pipeline_flag, season_types=sel.season_types or None)
            record_validation(warehouse, history_table, found)
    campaign.validations = [v for v in load_validations(warehouse, history_table) if v.touches(ranges)]
    campaign.issues = issues_encountered(rows, campaign.coverage)
    campaign.commands = next_commands(campaign)
    return campaign
