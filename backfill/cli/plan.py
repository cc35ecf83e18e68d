"""`backfill plan`: what a backfill would do, how long it should take, and what to look out for."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from backfill.cli.advice import Advice, advise, print_advice, season_spans
from backfill.cli.selection import (
    build_request,
    option_flag,
    parse_options,
    plan_from_warehouse,
    selection_options,
    sent_options,
)
from backfill.cli.windows import window_from, window_options, windows_summary
from backfill.planner import Plan


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def render_plan(plan: Plan, console: Console, advice: list[Advice] | None = None) -> None:
    """The plan's tables and estimates, then its warnings, each with its `advice` (what to run about it)."""
    est = plan.estimates
    console.print(f"[bold]Plan[/bold]: {est.tasks} tasks in {est.waves} waves over "
                  f"{plan.counts.get('game_dates', 0)} game dates")
    if not est.tasks:  # nothing to tabulate: the warnings say why (e.g. every partition already succeeded)
        print_advice(advice if advice is not None else advise(plan, None), console)
        return
    waves = Table(title="Waves", show_edge=False)
    waves.add_column("wave", justify="right")
    waves.add_column("tasks", justify="right")
    waves.add_column("processors")
    for i, wave in enumerate(plan.waves):
        procs: dict[str, int] = {}
        for t in wave:
            procs[t.processor] = procs.get(t.processor, 0) + 1
        waves.add_row(str(i), str(len(wave)), ", ".join(f"{p} ({n})" for p, n in procs.items()))
    console.print(waves)
    counts = Table(title="Tasks per phase and season", show_edge=False)
    counts.add_column("season")
    phases = sorted({t.phase for t in plan.tasks()})
    for p in phases:
        counts.add_column(f"phase {p}", justify="right")
    per: dict[tuple[str, int], int] = {}
    for t in plan.tasks():
        per[(t.season, t.phase)] = per.get((t.season, t.phase), 0) + 1
    for season in sorted({s for s, _ in per}, reverse=plan.request.order == "recent-first"):
        counts.add_row(season, *[str(per.get((season, p), 0)) for p in phases])
    console.print(counts)
    render_batching(plan, console)
    console.print(
        f"[bold]Estimates[/bold] at concurrency {est.concurrency}: wall {_duration(est.wall_seconds)} "
        f"(sequential {_duration(est.sequential_seconds)}, {est.speedup:.1f}x faster); "
        f"critical path {_duration(est.critical_path_seconds)}; total work {_duration(est.total_work_seconds)}")
    print_advice(advice if advice is not None else advise(plan, None), console)


def render_batching(plan: Plan, console: Console) -> None:
    """Each processor's dates per task and why the planner chose that size."""
    info = plan.batching
    procs = info.get("processors") or {}
    if not procs:
        return
    wh = info.get("warehouse") or {}
    table = Table(title=f"Batches (--batch {info.get('mode')}; {wh.get('kind', '?')} warehouse, "
                        f"{info.get('effective_concurrency')} concurrent job(s) assumed)", show_edge=False)
    table.add_column("processor")
    table.add_column("dates/task", justify="right")
    table.add_column("tasks", justify="right")
    table.add_column("why")
    for name, b in procs.items():
        table.add_row(name, str(b["size"]), str(b["tasks"]), "; ".join(b["reasons"]))
    console.print(table)


def render_options(sent: dict[str, Any], console: Console) -> None:
    """The options every call is sent (the spec's backfill_options and --option), and exceptions."""
    def show(opts: dict[str, Any]) -> str:
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in opts.items()) or "none"

    console.print(f"[bold]Options[/bold] sent to every processor: {show(sent['every_processor'])}", highlight=False)
    for name, opts in sent["by_processor"].items():
        console.print(f"  {name}: {show(opts)}", highlight=False)


def render_cost(cost: Any, console: Console) -> None:
    table = Table(title=f"Estimated BigQuery scan (dry runs, on demand at ${cost.usd_per_tib:g}/TiB)")
    for col in ("processor", "tasks", "dates", "sampled bytes", "estimated bytes", "estimated $"):
        table.add_column(col, justify="left" if col == "processor" else "right")
    for p in cost.processors:
        table.add_row(p.processor, str(p.tasks), str(p.dates), f"{p.sampled_bytes:,}",
                      p.skipped or f"{p.bytes:,}", "" if p.skipped else f"{p.usd:.4f}")
    table.add_row("total", "", "", "", f"{cost.bytes:,}", f"{cost.usd:.4f}")
    console.print(table)


@click.command("plan")
@selection_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (shape in docs/cli.md).")
@click.option("--preflight", "run_preflight", is_flag=True,
              help="Also check tables, columns per season and the schedule, as enqueue does (exit 2 on problems).")
@click.option("--cost", "with_cost", is_flag=True,
              help="BigQuery only: dry-run one task per processor and season and estimate bytes and on-demand cost.")
@window_options
@option_flag
@click.pass_obj
def plan(obj: Any, /, pipeline: str | None, as_json: bool, run_preflight: bool, with_cost: bool,
         window: str | None, tz: str | None, days: str | None, options: tuple[str, ...],
         **selection: Any) -> None:
    """Show the waves, tasks and estimates of a backfill, without running anything.

    With --window, also how many of those windows the estimated wall time needs from now.
    """
    from backfill.cli.preflight import check_request, refuse_on_problems

    hours = window_from(window, tz, days)
    run_options = parse_options(options)
    spec = obj.spec(pipeline)
    request = build_request(default_concurrency=obj.settings.concurrency, **selection)
    problems = check_request(spec, obj.warehouse(), request) if run_preflight else []
    if problems and as_json:
        click.echo(json.dumps({"preflight": [p.to_json() for p in problems]}))
    refuse_on_problems(problems, Console(stderr=True), "the plan was not built")
    result, calendar = plan_from_warehouse(spec, obj.warehouse(), request)
    cost = None
    if with_cost:
        from backfill.cost import estimate_cost

        cost = estimate_cost(result, spec, obj.warehouse(), calendar)
    windows = windows_summary(hours, result.estimates.wall_seconds) if hours else None
    sent = sent_options(spec, sorted({t.processor for t in result.tasks()}, key=spec.order.index), run_options)
    advice = advise(result, click.get_current_context(), season_spans(calendar))
    if as_json:
        click.echo(json.dumps({**result.to_json(), "advice": [a.to_json() for a in advice], "options": sent,
                               **({"cost": cost.to_json()} if cost else {}),
                               **({"windows": windows} if windows else {})}))
    else:
        render_plan(result, Console(), advice)
        render_options(sent, Console())
        if cost:
            render_cost(cost, Console())
        if windows:
            Console().print(f"[bold]Windows[/bold]: wall {_duration(result.estimates.wall_seconds)} needs "
                            f"{windows['text']}")
