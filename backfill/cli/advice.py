"""What to do about each plan warning: the command that fixes it, pasted as printed, or why nothing
needs running.

`plan` and `enqueue` print the planner's warnings; each gets one of
- `; fix: `backfill ...`` — the command the user ran, with their own flags (and the global
  --home/--warehouse/--redis-url they typed), plus the flag that removes the warning;
- ` (nothing to run: why)` — the warning is information, not a problem (a day without games, a
  window cut at the season start), optionally with the command that redoes what was skipped.
The planner's warnings are plain text, so each kind is recognised by its wording here; a warning
this module does not know gets no advice (tests/integration/test_plan_warnings.py runs each kind).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape

from backfill.planner import Plan

_GLOBALS = (("home", "--home"), ("warehouse", "--warehouse"), ("redis_url", "--redis-url"))


@dataclass(frozen=True)
class Advice:
    warning: str
    command: str | None = None  # a fix, or (with `why`) the command that redoes what was skipped
    why: str | None = None  # set when nothing needs running

    def line(self) -> str:
        return f"{self.warning}{self.suffix()}"

    def suffix(self) -> str:
        """`; fix: `...`` or ` (nothing to run: ...)`; empty when there is no advice."""
        if self.why is None:
            return f"; fix: `{self.command}`" if self.command else ""
        redo = f"; to redo them: `{self.command}`" if self.command else ""
        return f" (nothing to run: {self.why}{redo})"

    def to_json(self) -> dict[str, Any]:
        return {"warning": self.warning, "command": self.command, "nothing_to_run": self.why}


def invocation(ctx: click.Context | None, add: Sequence[str] = ()) -> str | None:
    """The command line that ran `ctx`'s command, rebuilt from what was typed (defaults and the
    environment left out, as the user's shell still has them), with the `add` flags appended."""
    if ctx is None or ctx.info_name is None:
        return None
    words = ["backfill"]
    parent = ctx.parent
    if parent is not None:
        for name, flag in _GLOBALS:
            value = parent.params.get(name)
            if value and parent.get_parameter_source(name) is ParameterSource.COMMANDLINE:
                if name == "redis_url" and "@" in str(value):  # never print a password into a hint
                    continue
                words += [flag, str(value)]
    words.append(ctx.info_name)
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in (None, "as_json"):
            continue
        if ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            continue
        value = ctx.params.get(param.name)
        flag = max((o for o in param.opts if o.startswith("--")), key=len, default=param.opts[0])
        if param.is_flag:
            if value:
                words.append(flag)
        elif param.multiple:
            for v in value or ():
                words += [flag, str(v)]
        elif value is not None and param.name is not None:
            words += [flag, str(value)]
    words += [a for a in add if a not in words]
    return " ".join(shlex.quote(w) for w in words)


_NO_DATES = re.compile(r"^the requested ranges contain no game dates")
_NO_GAMES = re.compile(r"^\d+ requested day\(s\) have no games")
_OUTSIDE = re.compile(r"^\d+ requested day\(s\) lie outside every season")
_SKIPPED = re.compile(r"^\d+ task date\(s\) already succeeded")
_BOOTSTRAP = re.compile(r"^\d+ bootstrap task\(s\)")
_CUT = re.compile(r"^\w+: \d+ task\(s\) have a lookback window cut at the season start")
_UNSATISFIED = re.compile(r"^\w+: \d+ upstream partition\(s\) are neither planned nor recorded")


def advise(plan: Plan, ctx: click.Context | None, seasons: str = "") -> list[Advice]:
    """Each warning of `plan` with its advice. `ctx` is the command that planned it (`plan` or
    `enqueue`); `seasons` names the schedule's seasons, for the warnings about days outside them."""
    out: list[Advice] = []
    for w in plan.warnings:
        # The seasons once, on the first warning about days outside them.
        where = f"; the schedule's seasons: {seasons}" if seasons and not any(a.why and "seasons:" in a.why
                                                                             for a in out) else ""
        if _UNSATISFIED.match(w):
            if plan.request.with_upstream:
                out.append(Advice(w, why="--with-upstream is given: these upstream dates are not in the schedule"))
            else:
                out.append(Advice(w, command=invocation(ctx, ["--with-upstream"])))
        elif _SKIPPED.match(w):
            out.append(Advice(w, command=invocation(ctx, ["--force"]), why="their latest run succeeded"))
        elif _NO_DATES.match(w):
            out.append(Advice(w, why=f"no game of the selection is scheduled in the range{where}"))
        elif _OUTSIDE.match(w):
            out.append(Advice(w, why=f"the schedule has no season on those days{where}"))
        elif _NO_GAMES.match(w):
            out.append(Advice(w, why="a day without games has no partitions to write"))
        elif _BOOTSTRAP.match(w) or _CUT.match(w):
            out.append(Advice(w, why="there are no games before the season start to read; "
                                     "the windows are as full as the season allows"))
        else:
            out.append(Advice(w))
    return out


def season_spans(calendar: Any) -> str:
    """`2023-24 (2023-10-24..2024-06-17), ...`: the seasons the schedule holds."""
    return ", ".join(f"{s.label} ({s.start}..{s.end})" for s in calendar.seasons.values())


def print_advice(advice: Sequence[Advice], console: Console) -> None:
    """Each warning on a line of its own with its advice; consecutive warnings with the same advice
    (one per processor) share it, on an indented line after them. Never wrapped: a command must
    paste whole."""
    i = 0
    while i < len(advice):
        j = i + 1
        while j < len(advice) and (advice[j].command, advice[j].why) == (advice[i].command, advice[i].why):
            j += 1
        if j - i == 1 or not advice[i].suffix():
            for a in advice[i:j]:
                console.print(f"[yellow]warning[/yellow]: {escape(a.line())}", soft_wrap=True, highlight=False)
        else:
            for a in advice[i:j]:
                console.print(f"[yellow]warning[/yellow]: {escape(a.warning)}", soft_wrap=True, highlight=False)
            a, n = advice[i], j - i
            redo = f"; to redo them: `{a.command}`" if a.command else ""
            shared = (f"fix for the {n} warnings above: `{a.command}`" if a.why is None
                      else f"nothing to run for the {n} warnings above: {a.why}{redo}")
            console.print(f"  {escape(shared)}", soft_wrap=True, highlight=False)
        i = j
