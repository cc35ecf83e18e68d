"""Execution windows as pure code: parsing, open/close with a simulated clock, DST, and counting windows."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from backfill.errors import BadInput
from backfill.windows import ExecutionWindow, parse_days

NY = ZoneInfo("America/New_York")


def ny(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=NY)  # type: ignore[misc]


NIGHTS = ExecutionWindow.parse("22:00-07:00", "America/New_York", "mon-fri")


def test_parse_and_refuse() -> None:
    w = ExecutionWindow.parse("22:00-07:00")
    assert (w.start, w.end, w.tz, w.days) == (dt.time(22), dt.time(7), "UTC", tuple(range(7)))
    assert w.length == dt.timedelta(hours=9)
    assert ExecutionWindow.parse("09:00-17:30").length == dt.timedelta(hours=8, minutes=30)
    assert parse_days("mon-fri") == (0, 1, 2, 3, 4)
    assert parse_days("fri-mon") == (0, 4, 5, 6)
    assert parse_days("sat,sun") == (5, 6)
    assert ExecutionWindow.from_json(NIGHTS.to_json()) == NIGHTS
    assert NIGHTS.describe() == "22:00-07:00 America/New_York mon,tue,wed,thu,fri"
    for spec, tz, days, word in [("22-07", None, None, "HH:MM-HH:MM"), ("25:00-07:00", None, None, "HH:MM"),
                                 ("08:00-08:00", None, None, "same time"), ("22:00-07:00", "Mars/Base", None, "--tz"),
                                 ("22:00-07:00", None, "weekdays", "--days")]:
        with pytest.raises(BadInput, match=word):
            ExecutionWindow.parse(spec, tz, days)


def test_open_and_close_around_midnight_with_a_simulated_clock() -> None:
    # 2026-12-07 is a Monday.
    assert not NIGHTS.is_open(ny(2026, 12, 7, 21, 59))
    assert NIGHTS.next_open(ny(2026, 12, 7, 21, 59)) == ny(2026, 12, 7, 22, 0)
    assert NIGHTS.is_open(ny(2026, 12, 7, 22, 0))
    assert NIGHTS.is_open(ny(2026, 12, 8, 6, 59)), "Monday's window runs into Tuesday morning"
    assert NIGHTS.next_close(ny(2026, 12, 8, 6, 59)) == ny(2026, 12, 8, 7, 0)
    assert not NIGHTS.is_open(ny(2026, 12, 8, 7, 0))
    assert NIGHTS.is_open(ny(2026, 12, 12, 6, 0)), "Friday's window ends Saturday 07:00"
    assert not NIGHTS.is_open(ny(2026, 12, 12, 23, 0)), "no window opens on Saturday"
    assert NIGHTS.next_open(ny(2026, 12, 12, 8, 0)) == ny(2026, 12, 14, 22, 0), "next: Monday night"
    # The same instant given in UTC answers the same.
    assert NIGHTS.is_open(ny(2026, 12, 8, 3, 0).astimezone(dt.UTC))
    days = ExecutionWindow.parse("09:00-17:00", "UTC")
    assert days.is_open(dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC))
    assert not days.is_open(dt.datetime(2026, 12, 5, 17, 0, tzinfo=dt.UTC))


def test_dst_change_is_a_shorter_night() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT: Saturday night 22:00-07:00 lasts 8 hours, not 9.
    every = ExecutionWindow.parse("22:00-07:00", "America/New_York")
    opens, closes = next(every.spans(ny(2026, 3, 7, 23, 0)))
    assert closes - opens == dt.timedelta(hours=8)
    assert every.is_open(ny(2026, 3, 8, 3, 30))


def test_windows_needed_for_the_work() -> None:
    monday_noon = ny(2026, 12, 7, 12, 0)
    assert NIGHTS.finish(dt.timedelta(0), monday_noon) == (0, monday_noon.astimezone(dt.UTC))
    count, ends = NIGHTS.finish(dt.timedelta(hours=9), monday_noon)
    assert count == 1 and ends == ny(2026, 12, 8, 7, 0)
    count, ends = NIGHTS.finish(dt.timedelta(hours=20), monday_noon)
    assert count == 3 and ends == ny(2026, 12, 10, 0, 0), "9 h + 9 h + 2 h into Wednesday night"
    # Started inside a window, only what is left of it counts.
    count, ends = NIGHTS.finish(dt.timedelta(hours=9), ny(2026, 12, 8, 6, 0))
    assert count == 2 and ends == ny(2026, 12, 9, 6, 0)
    # Friday night then the weekend: the next window is Monday's.
    count, ends = NIGHTS.finish(dt.timedelta(hours=10), ny(2026, 12, 11, 22, 0))
    assert count == 2 and ends == ny(2026, 12, 14, 23, 0)
    assert ExecutionWindow.parse("09:00-17:00").nights(3600, monday_noon).startswith("1 window of 09:00-17:00 UTC")
    assert NIGHTS.nights(20 * 3600, monday_noon).startswith("3 nights of 22:00-07:00 America/New_York")
