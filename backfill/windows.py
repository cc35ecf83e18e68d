"""Execution windows: the hours a run may start tasks in (`enqueue --window 22:00-07:00`).

The users want to run "in work hours or overnight" and pause/resume as needed. A window is a
daily stretch of wall-clock time in one time zone, on some days of the week; it may cross
midnight (22:00-07:00). `--days` names the day a window *opens* on: `--window 22:00-07:00
--days mon-fri` is Monday 22:00 to Tuesday 07:00, ..., Friday 22:00 to Saturday 07:00.

Pure code with the clock passed in (`at`), so "when does it open next", "when does it close"
and "how many windows does this much work need" are tested with any date, DST changes
included. Every comparison is made in UTC: two aware datetimes with the same ZoneInfo compare by
wall time, which is wrong across a DST change.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backfill.errors import BadInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


@dataclass(frozen=True)
class ExecutionWindow:
    start: dt.time
    end: dt.time
    tz: str = "UTC"
    days: tuple[int, ...] = tuple(range(7))  # weekday() of the days a window opens on

    @classmethod
    def parse(cls, spec: str, tz: str | None = None, days: str | None = None) -> ExecutionWindow:
        """`HH:MM-HH:MM` (seconds allowed), an IANA zone (default UTC), days like `mon-fri` or `sat,sun`.

        Raises BadInput naming the value and the expected form.
        """
        start_text, sep, end_text = spec.strip().partition("-")
        start, end = _time(start_text), _time(end_text)
        if not sep or start is None or end is None:
            raise BadInput(f"--window {spec!r} is not HH:MM-HH:MM",
                           hint="e.g. --window 22:00-07:00 (may cross midnight)")
        if start == end:
            raise BadInput(f"--window {spec!r} opens and closes at the same time",
                           hint="leave --window out to run at any time")
        zone = tz or "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise BadInput(f"--tz {zone!r} is not a time zone", hint="an IANA name, e.g. America/New_York") from None
        return cls(start, end, zone, parse_days(days) if days else tuple(range(7)))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def length(self) -> dt.timedelta:
        """How long one window lasts (nominally: a DST change makes one night an hour shorter or longer)."""
        a = dt.datetime.combine(dt.date(2000, 1, 3), self.start)
        b = dt.datetime.combine(dt.date(2000, 1, 3), self.end)
        return (b - a) if self.end > self.start else (b - a + dt.timedelta(days=1))

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "tz": self.tz,
                "days": [DAYS[d] for d in self.days]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExecutionWindow:
        return cls(dt.time.fromisoformat(data["start"]), dt.time.fromisoformat(data["end"]), data.get("tz", "UTC"),
                   tuple(DAYS.index(d) for d in data.get("days", DAYS)))

    def describe(self) -> str:
        days = "" if len(self.days) == 7 else " " + ",".join(DAYS[d] for d in self.days)
        form = "%H:%M:%S" if self.start.second or self.end.second else "%H:%M"
        return f"{self.start.strftime(form)}-{self.end.strftime(form)} {self.tz}{days}"

    # -- when -------------------------------------------------------------------------
    def spans(self, at: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """The windows (open, close) in UTC that end after `at`, in order, forever."""
        at = _utc(at)
        day = at.astimezone(self.zone).date() - dt.timedelta(days=1)  # an overnight window opened yesterday
        while True:
            if day.weekday() in self.days:
                opens = _utc(dt.datetime.combine(day, self.start, self.zone))
                close_day = day if self.end > self.start else day + dt.timedelta(days=1)
                closes = _utc(dt.datetime.combine(close_day, self.end, self.zone))
                if closes > at:
                    yield opens, closes
            day += dt.timedelta(days=1)

    def is_open(self, at: dt.datetime) -> bool:
        opens, closes = next(self.spans(at))
        return opens <= _utc(at) < closes

    def next_open(self, at: dt.datetime) -> dt.datetime:
        """`at` itself when the window is open, else when it opens next (UTC)."""
        opens, _ = next(self.spans(at))
        return max(opens, _utc(at))

    def next_close(self, at: dt.datetime) -> dt.datetime:
        """When the current window closes, or the next one if it is shut now (UTC)."""
        return next(self.spans(at))[1]

    def finish(self, work: dt.timedelta, at: dt.datetime) -> tuple[int, dt.datetime]:
        """How many windows `work` of wall time needs starting at `at` (the current one counts if
        open), and when it ends. Zero work needs zero windows and ends at `at`."""
        left = work
        count = 0
        if left <= dt.timedelta(0):
            return 0, _utc(at)
        for opens, closes in self.spans(at):
            begin = max(opens, _utc(at))
            count += 1
            if closes - begin >= left:
                return count, begin + left
            left -= closes - begin
        raise AssertionError("unreachable: spans never ends")  # pragma: no cover

    def nights(self, work_seconds: float, at: dt.datetime) -> str:
        """`plan`'s words for it: "3 nights of 22:00-07:00 America/New_York, ending about ..." (a
        window crossing midnight is a night; others are windows)."""
        count, ends = self.finish(dt.timedelta(seconds=max(0.0, work_seconds)), at)
        unit = ("night" if self.end < self.start else "window") + ("" if count == 1 else "s")
        local = ends.astimezone(self.zone)
        return f"{count} {unit} of {self.describe()}, ending about {local:%a %Y-%m-%d %H:%M} {self.tz}"


def parse_days(text: str) -> tuple[int, ...]:
    """`mon-fri`, `sat,sun`, `fri-mon` (wraps), `mon,wed-fri` -> sorted weekday numbers."""
    out: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, sep, last = part.partition("-")
        if first not in DAYS or (sep and last not in DAYS):
            raise BadInput(f"--days {text!r} is not a list of days",
                           hint="three-letter days, ranges allowed: mon-fri, sat,sun, fri-mon")
        a = DAYS.index(first)
        b = DAYS.index(last) if sep else a
        span = (b - a) % 7
        out.update((a + i) % 7 for i in range(span + 1))
    return tuple(sorted(out))


def _time(text: str) -> dt.time | None:
    m = _TIME.match(text.strip())
    if not m:
        return None
    return dt.time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def _utc(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return at.astimezone(dt.UTC)

