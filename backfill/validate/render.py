"""The validation report for people: rich tables on the terminal, Markdown for the sign-off record.

Both are drawn from the same `Report` the `--json` output serialises, so the three never disagree.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from rich.console import Console
from rich.table import Table

from backfill.calendar import Calendar
from backfill.validate.staleness import StalePartition, StaleReport
from backfill.validate.suite import Report

FIRST = 5


def render_report(report: Report, console: Console) -> None:
    verdict = "[bold green]PASSED[/bold green]" if report.passed else "[bold red]FAILED[/bold red]"
    console.print(f"[bold]Validation[/bold] of {report.pipeline}: {verdict}: {_selection(report)}")
    summary = Table(show_edge=False, title_justify="left")
    summary.add_column("check")
    summary.add_column("result")
    summary.add_column("figures", overflow="fold")
    for c in report.checks:
        summary.add_row(c.title, "[green]pass[/green]" if c.passed else f"[red]{len(c.findings)} finding(s)[/red]",
                        "; ".join(c.figures))
    console.print(summary)
    for c in report.checks:
        if c.passed:
            continue
        table = Table(title=f"{c.title}: {len(c.findings)} finding(s)", title_justify="left", show_edge=False)
        table.add_column("processor")
        table.add_column("finding", overflow="fold")
        table.add_column("examples", overflow="fold")
        for f in c.findings:
            table.add_row(f.processor or "", f.message, "\n".join(f.examples[:FIRST]))
        console.print(table)
    refill = next((c.data.get("refill") for c in report.checks if c.name == "completeness"), None)
    if refill:
        console.print("done in the run history but empty or short in the warehouse; refill with `"
                      + " && ".join(refill) + "`", soft_wrap=True)
    commands = next((c.data.get("commands") for c in report.checks if c.name == "staleness"), None)
    if commands:
        console.print("recompute the stale partitions with: " + " && ".join(commands), soft_wrap=True)


def markdown(report: Report) -> str:
    """The sign-off record: selection, verdict, each check with its figures, every finding."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Backfill validation: {report.pipeline}", "",
             f"- verdict: **{'PASSED' if report.passed else 'FAILED'}**",
             f"- selection: {_selection(report)}",
             f"- processors: {', '.join(report.processors)}",
             f"- spot-check seed: {report.seed} (rerun with `--seed {report.seed}` to draw the same partitions)",
             f"- validated at {when} in {report.seconds:.1f} s", "",
             "| check | result | figures |", "|---|---|---|"]
    for c in report.checks:
        result = "pass" if c.passed else f"**{len(c.findings)} finding(s)**"
        lines.append(f"| {c.title} | {result} | {'; '.join(c.figures).replace('|', '/')} |")
    for c in report.checks:
        if c.passed:
            continue
        lines += ["", f"## {c.title}", ""]
        for f in c.findings:
            lines.append(f"- {f.processor + ': ' if f.processor else ''}{f.message}")
            lines += [f"  - `{e}`" for e in f.examples[:FIRST]]
    refill = next((c.data.get("refill") for c in report.checks if c.name == "completeness"), None)
    if refill:
        lines += ["", "Done in the run history but empty or short in the warehouse; refill with:", "", "```",
                  " && ".join(refill), "```"]
    commands = next((c.data.get("commands") for c in report.checks if c.name == "staleness"), None)
    if commands:
        lines += ["", "Recompute the stale partitions with:", "", "```", " && ".join(commands), "```"]
    return "\n".join(lines) + "\n"


def _selection(report: Report) -> str:
    spans = ", ".join(f"{a}..{b}" for a, b in report.ranges)
    return f"{spans} ({report.game_dates} game dates; seasons {', '.join(report.seasons) or 'none'})"


def render_stale(report: StaleReport, names: tuple[str, ...], calendar: Calendar, console: Console) -> None:
    """`gaps --stale`: per processor, the stale partitions per season and why; then the commands."""
    console.print(f"[bold]Stale[/bold]: {len(report.stale)} of {report.checked} written partitions"
                  + (f" ({report.unversioned} written before code versions were recorded: not judged on code)"
                     if report.unversioned else ""))
    per: dict[str, dict[str, list[StalePartition]]] = defaultdict(lambda: defaultdict(list))
    for s in report.stale:
        per[s.processor][str(calendar.season_of(s.date))].append(s)
    for name in names:
        seasons = per.get(name)
        if not seasons:
            console.print(f"{name}: nothing stale")
            continue
        table = Table(title=f"{name}: {sum(len(v) for v in seasons.values())} stale", title_justify="left",
                      show_edge=False)
        table.add_column("season")
        table.add_column("stale", justify="right")
        table.add_column("first dates")
        table.add_column("first reason", overflow="fold")
        for season, items in sorted(seasons.items()):
            more = f" (+{len(items) - FIRST} more)" if len(items) > FIRST else ""
            table.add_row(season, str(len(items)), ", ".join(s.date.isoformat() for s in items[:FIRST]) + more,
                          "; ".join(items[0].reasons)[:200])
        console.print(table)
    if report.commands:
        console.print("recompute, in this order: " + " && ".join(report.commands), soft_wrap=True)
