"""The planner: pure functions from (spec, calendar, request) to a frozen Plan. No I/O."""

from __future__ import annotations

from collections import Counter

from backfill.calendar import Calendar
from backfill.planner.estimates import estimate, task_estimates
from backfill.planner.graph import build_draft
from backfill.planner.model import Estimates, Plan, PlanRequest, Task, parse_task_id, task_id
from backfill.planner.waves import assign_waves, group_waves
from backfill.spec import PipelineSpec

__all__ = ["Estimates", "Plan", "PlanRequest", "Task", "build_plan", "parse_task_id", "task_id"]


def build_plan(spec: PipelineSpec, calendar: Calendar, request: PlanRequest) -> Plan:
    draft = build_draft(spec, calendar, request)
    est = task_estimates(draft.tasks, {n: b.cost for n, b in draft.batches.items()})
    wave = assign_waves(draft.tasks)
    rank = {n: i for i, n in enumerate(spec.order)}
    waves = group_waves(draft.tasks, wave, est, request.order, rank)
    estimates = estimate(draft.tasks, waves, est, request.concurrency)

    warnings: list[str] = []
    if not draft.requested_dates:
        warnings.append("the requested ranges contain no game dates of the selected seasons and season types")
    if draft.no_game_days:
        warnings.append(f"{draft.no_game_days} requested day(s) have no games (off-days, All-Star break) "
                        "and are skipped, not gaps")
    if draft.outside_season_days:
        warnings.append(f"{draft.outside_season_days} requested day(s) lie outside every season in the schedule")
    if draft.skipped_completed:
        adopted = (f"; {draft.skipped_adopted} of them adopted from rows the processors' own code wrote "
                   "(history_names)" if draft.skipped_adopted else "")
        warnings.append(f"{draft.skipped_completed} task date(s) already succeeded in the run history and are "
                        f"skipped{adopted}")
    bootstrap = sum(1 for t in draft.tasks if t.bootstrap)
    if bootstrap:
        warnings.append(f"{bootstrap} bootstrap task(s) in the first {spec.bootstrap_days} days of a season run "
                        "with short lookback windows")
    for name, n in sorted(draft.cut_by_processor.items(), key=lambda kv: rank[kv[0]]):
        warnings.append(f"{name}: {n} task(s) have a lookback window cut at the season start")
    for name, n in sorted(draft.unsatisfied.items(), key=lambda kv: rank[kv[0]]):
        warnings.append(f"{name}: {n} upstream partition(s) are neither planned nor recorded as complete "
                        f"(e.g. {draft.unsatisfied_example[name]}); include their phase or backfill it first")

    by_phase: Counter[str] = Counter()
    by_season: Counter[str] = Counter()
    by_processor: Counter[str] = Counter()
    for t in draft.tasks:
        by_phase[f"phase {t.phase}"] += 1
        by_season[t.season] += 1
        by_processor[t.processor] += 1
    counts = {
        "game_dates": len(draft.requested_dates),
        "by_phase": dict(sorted(by_phase.items())),
        "by_season": dict(sorted(by_season.items())),
        "by_processor": {n: by_processor[n] for n in spec.order if by_processor[n]},
        "bootstrap": bootstrap,
        "adopted": draft.skipped_adopted,
        "days_without_games": draft.no_game_days,
        "days_outside_seasons": draft.outside_season_days,
        "unsatisfied_upstream": sum(draft.unsatisfied.values()),
    }
    batching = {
        "mode": request.batch if request.batch is not None else "spec",
        "warehouse": request.profile.to_json(),
        "effective_concurrency": request.profile.effective_concurrency(request.concurrency),
        "processors": {n: draft.batches[n].to_json() for n in spec.order if n in draft.batches},
    }
    return Plan(request=request, waves=waves, estimates=estimates, warnings=tuple(warnings),
                skipped_completed=draft.skipped_completed, skipped_adopted=draft.skipped_adopted, counts=counts,
                batching=batching)
