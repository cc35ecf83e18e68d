"""`--window/--tz/--days`: the execution-window options `plan` and `enqueue` share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import click

from backfill.errors import BadInput
from backfill.windows import ExecutionWindow

F = TypeVar("F", bound=Callable[..., Any])


def window_options(func: F) -> F:
    """Adds --window, --tz and --days; the command gets them as `window`, `tz`, `days`."""
    func = click.option("--days", default=None, metavar="DAYS",
                        help="Days a window opens on: mon-fri, sat,sun, fri-mon (default every day).")(func)
    func = click.option("--tz", default=None, metavar="ZONE",
                        help="Time zone of --window (IANA, e.g. America/New_York; default UTC).")(func)
    func = click.option("--window", default=None, metavar="HH:MM-HH:MM",
                        help="Start tasks only inside this daily window (may cross midnight: 22:00-07:00); "
                             "outside it the run pauses by itself.")(func)
    return func


def window_from(window: str | None, tz: str | None, days: str | None) -> ExecutionWindow | None:
    """The window the flags describe; --tz or --days without --window is bad input."""
    if window is None:
        if tz or days:
            raise BadInput("--tz and --days describe a --window, and none was given",
                           hint="e.g. --window 22:00-07:00 --tz America/New_York --days mon-fri")
        return None
    return ExecutionWindow.parse(window, tz, days)


def windows_summary(window: ExecutionWindow, wall_seconds: float, at: dt.datetime | None = None) -> dict[str, Any]:
    """How many windows the estimated wall time needs from `at` (now), and when it would end."""
    at = at or dt.datetime.now(dt.UTC)
    count, ends = window.finish(dt.timedelta(seconds=max(0.0, wall_seconds)), at)
    return {"window": window.to_json(), "windows": count, "ends": ends.isoformat(timespec="minutes"),
            "open_now": window.is_open(at), "text": window.nights(wall_seconds, at)}
