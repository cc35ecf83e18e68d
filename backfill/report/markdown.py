"""The execution log as Markdown: what a reviewer reads to sign a backfill off, and what the docs show.

Sections follow the users' list: test-run results, the timeline, issues encountered and their
resolutions, final statistics; then validation and the commands that fill what is missing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from backfill.outcome import TaskOutcome
from backfill.report.facts import COVERAGE, PROBLEMS, SUCCEEDED, TASK_STATUSES, Campaign, RunFacts, Span


def _t(epoch: float | None) -> str:
    return "-" if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _d(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s" if m else f"{seconds:.1f}s"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |" for r in rows]
    return out + [""]


def _selection(req: dict[str, Any]) -> str:
    parts = [" ".join(f"{a}..{b}" for a, b in req.get("ranges") or [])]
    if req.get("phases"):
        parts.append("phases " + ",".join(str(p) for p in req["phases"]))
    if req.get("processors"):
        parts.append("processors " + ",".join(req["processors"]))
    if req.get("seasons"):
        parts.append("seasons " + ",".join(req["seasons"]))
    if req.get("season_types"):
        parts.append("season types " + ",".join(req["season_types"]))
    parts.append(f"order {req.get('order', 'recent-first')}")
    if req.get("force"):
        parts.append("forced")
    if req.get("batch") is not None:
        parts.append(f"batch {req['batch']}")
    return "; ".join(p for p in parts if p)


def _spans(title: str, spans: Sequence[Span], origin: float) -> list[str]:
    rows = [[s.name, s.tasks, _d(s.start - origin) if s.start is not None else "-",
             _d(s.end - origin) if s.end is not None else "-", _d(s.seconds)] for s in spans]
    return _table([title, "tasks", "first start (+)", "last finish (+)", "span"], rows)


def run_section(run: RunFacts, index: int, total: int) -> list[str]:
    c = run.counts()
    req = run.request
    est = run.estimate()
    out = [f"## Run {index} of {total}: {run.run_id} ({run.status})", ""]
    if run.source == "history":
        out += ["Redis no longer holds this run: it is read from the run ledger and the run history "
                "(tasks not yet written to the history, re-sends, throttle and alerts are not known).", ""]
    out += [f"- **Request:** {_selection(req)}; concurrency {req.get('concurrency', '-')}; alerts {run.alerts}; "
            f"{'strict' if run.strict else 'not strict'}",
            f"- **Plan:** {len(run.tasks)} tasks in {run.waves} waves over {len(run.game_dates())} game dates "
            f"({sum(len(t.dates) for t in run.tasks)} partitions)",
            f"- **Estimate:** wall {_d(est['estimated_wall_seconds'])} at concurrency {est['concurrency']} "
            f"(work {_d(est['estimated_work_seconds'])}); **actual** wall {_d(est['actual_wall_seconds'])}, "
            f"task time {_d(est['actual_task_seconds'])}",
            f"- **Timeline:** created {_t(run.created_at)}, first task {_t(run.started())}, "
            f"finished {_t(run.finished_at)}" + (f"; {run.seq} retry/resume round(s)" if run.seq else ""), ""]
    by = run.by_phase_season()
    out += ["### Tasks per status", ""]
    always = (SUCCEEDED, TaskOutcome.failed, TaskOutcome.blocked)
    shown = [s for s in TASK_STATUSES if s != TaskOutcome.skipped and (c[s] or s in always)]
    out += _table(["phase", "season", *shown], [[g["phase"], g["season"], *(g[s] for s in shown)] for g in by]
                  + [["all", "", *(f"**{c[s]}**" for s in shown)]])
    origin = run.created_at
    out += ["### Timeline", "", "Offsets from the run's creation; real task start and finish times.", ""]
    out += _spans("wave", run.spans("wave"), origin)
    out += _spans("season", run.spans("season"), origin)
    out += _spans("phase", run.spans("phase"), origin)
    out += ["### Retries and re-sent attempts", ""]
    retried = run.retried()
    lines = [f"- {len(retried)} task(s) ran more than once"
             + (f"; {run.resent} re-sent after their worker died" if run.resent else "; none re-sent after a "
                "worker died") + (f"; the watchdog healed the run {run.healed} time(s) ({run.heal_reason})"
                                  if run.healed else "")]
    for t in retried[:15]:
        trail = ", ".join(f"attempt {a['attempt']} {a['status']} ({a['category'] or '-'})" for a in t.failed_attempts)
        lines.append(f"- `{t.id}`: {t.attempts} attempt(s); {trail or 'transient retries'}; now {t.status}")
    if len(retried) > 15:
        lines.append(f"- ... and {len(retried) - 15} more (`--json` lists every one)")
    out += lines + [""]
    out += ["### Throttle changes", ""]
    if run.throttle:
        out += _table(["time", "limit", "previous", "reason"],
                      [[_t(float(e["at"])), e["limit"], e["previous"], e["reason"]] for e in run.throttle])
    else:
        out += ["none" if run.source == "redis" else "not known (Redis lost the run)", ""]
    out += ["### Failures and warnings by category", ""]
    groups = (run.digest or {}).get("groups") or []
    if groups:
        counted = (TaskOutcome.failed, TaskOutcome.partial, TaskOutcome.blocked)
        out += _table(["category", "processor", "dates", *counted, "game dates", "example"],
                      [[g["category"], g["processor"], g["count"], *(g[s] for s in counted),
                        ", ".join(a if a == b else f"{a}..{b}" for a, b in g["runs"][:6]),
                        (g["examples"] or [""])[0][:160]] for g in groups])
    elif run.digest is not None:
        out += ["none", ""]
    else:
        bad = [t for t in run.tasks if t.status in PROBLEMS]
        out += (_table(["task", "status", "category", "message"],
                       [[t.id, t.status, t.error_category, (t.error_message or "")[:160]] for t in bad[:30]])
                if bad else ["none", ""])
    warned = [t for t in run.tasks if t.warnings]
    if warned:
        out += [f"{len(warned)} task(s) finished with warnings, e.g. `{warned[0].id}`: {warned[0].warnings[0][:200]}",
                ""]
    if run.alert_status:
        sent = run.alert_status.get("sent") or []
        fails = run.alert_status.get("failures") or []
        out += [f"Alerts ({run.alert_status.get('mode')}): {len(sent)} sent"
                + (f", {len(fails)} sink failure(s)" if fails else "") + ".", ""]
    out += ["### Trigger pauses", ""]
    if run.triggers:
        out += _table(["trigger", "paused", "released", "lease held until"],
                      [[f"`{p['trigger']}`", _t(p["paused_at"]),
                        _t(p["released_at"]) if p["released_at"] else "still paused",
                        p["held_until"] or "-"] for p in run.triggers])
    else:
        out += ["none recorded", ""]
    return out


def render_markdown(campaign: Campaign) -> str:
    runs = campaign.runs
    title = runs[0].run_id if len(runs) == 1 else f"{len(runs)} runs, {runs[0].run_id} .. {runs[-1].run_id}"
    out = [f"# Execution log: {title}", "",
           f"Generated {_t(campaign.generated_at)} by `backfill report` from run state and the run history"
           + (f" ({campaign.warehouse})" if campaign.warehouse else "") + ".", ""]
    out += ["## Final statistics", ""]
    rows = []
    for r in runs:
        c = r.counts()
        est = r.estimate()
        parts = sum(len(t.dates) for t in r.tasks)
        rate = len(r.tasks) / est["actual_wall_seconds"] * 60 if est["actual_wall_seconds"] else 0.0
        rows.append([r.run_id, r.status, _selection(r.request).split(";")[0], len(r.tasks), parts,
                     c[SUCCEEDED], c[TaskOutcome.partial], c[TaskOutcome.failed], c[TaskOutcome.blocked],
                     len(r.retried()),
                     _d(est["actual_wall_seconds"]), f"{rate:.0f}"])
    out += _table(["run", "status", "ranges", "tasks", "partitions", SUCCEEDED, TaskOutcome.partial, TaskOutcome.failed,
                   TaskOutcome.blocked, "retried", "wall", "tasks/min"], rows)
    cov = campaign.coverage
    if cov is not None:
        total = len(cov.cells)
        n = {k: sum(1 for v in cov.cells.values() if v == k) for k in COVERAGE}
        out += [f"**Coverage now** (latest status of every processor x game date of the selection, "
                f"{len(cov.processors)} processors x {len(cov.dates)} game dates): "
                + ", ".join(f"{k} {n[k]}" for k in COVERAGE if n[k] or k == SUCCEEDED)
                + f" of {total}.", ""]
        out += _table(["processor", *COVERAGE], [[p, *(v[k] for k in COVERAGE)] for p, v in cov.counts().items()])
    if campaign.coverage_note:
        out += [campaign.coverage_note, ""]
    for i, run in enumerate(runs, 1):
        out += run_section(run, i, len(runs))
    out += ["## Issues encountered and resolutions", ""]
    if campaign.issues:
        out += _table(["category", "processor", "dates", "first..last", "resolved by", "still open", "example"],
                      [[i["category"], i["processor"], i["dates"], f"{i['first']}..{i['last']}",
                        ", ".join(f"{k} ({v})" for k, v in i["resolved_by"].items()) or "-", i["open"],
                        (i["example"] or "")[:160]] for i in campaign.issues])
    else:
        out += ["none: no task failed, was blocked or fell short", ""]
    out += ["## Validation", ""]
    if campaign.validations:
        out += _table(["validated", "ranges", "processors", "verdict", "findings", "seed", "failed checks"],
                      [[_t(v.validated_at.timestamp()), " ".join(f"{a}..{b}" for a, b in v.ranges), len(v.processors),
                        "**pass**" if v.passed else "**FAIL**", v.findings, v.seed,
                        ", ".join(c["title"] for c in v.checks if not c["passed"]) or "-"]
                       for v in campaign.validations])
    else:
        out += ["`backfill validate` has not been run for these ranges.", ""]
    out += ["## What is missing, and the commands that fill it", ""]
    if campaign.commands:
        for why, cmd in campaign.commands:
            out += [f"- {why}:", "", "  ```", f"  {cmd}", "  ```", ""]
    else:
        out += ["Nothing: every partition of the selection succeeded and the latest validation passed.", ""]
    return "\n".join(out).rstrip() + "\n"
