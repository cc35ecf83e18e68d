"""The calendar resolves windows against game dates: off-days and breaks are never gaps."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from backfill.calendar import Calendar
from backfill.spec import Window

D = dt.date


def game(n: int, day: dt.date, home: str, away: str, season: str, kind: str = "regular") -> dict[str, Any]:
    return {"game_id": f"g{n}", "game_date": day, "season": season, "season_type": kind,
            "home_team": home, "away_team": away}


def days(start: dt.date, *offsets: int) -> list[dt.date]:
    return [start + dt.timedelta(days=o) for o in offsets]


# Season 2023-24: games on most days of two weeks, an off-day (Oct 27), an "All-Star break"
# (Nov 3 - Nov 9 without games), then more games, play-in and playoffs. 2022-23 has a few
# dates in spring. A preseason game and an All-Star game are in the table but excluded.
PREV = days(D(2023, 4, 1), 0, 2, 4, 6, 8)
OPEN = D(2023, 10, 24)
CUR_REGULAR = days(OPEN, 0, 1, 2, 4, 5, 6, 7, 8, 9) + days(D(2023, 11, 10), 0, 1, 3, 4)
BREAK = days(D(2023, 11, 3), 0, 1, 2, 3, 4, 5, 6)
PLAY_IN = D(2023, 11, 16)
PLAYOFFS = days(D(2023, 11, 18), 0, 2)
TEAMS = ("ATL", "BOS", "CHI", "DAL")


def schedule() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    pairs = [("ATL", "BOS"), ("CHI", "DAL"), ("ATL", "CHI"), ("BOS", "DAL"), ("ATL", "DAL"), ("BOS", "CHI")]
    for i, d in enumerate(PREV):
        rows.append(game(len(rows), d, *pairs[i % len(pairs)], "2022-23"))
    # One game per date, rotating pairs, so each team's dates differ from the league's.
    for i, d in enumerate(CUR_REGULAR):
        rows.append(game(len(rows), d, *pairs[i % len(pairs)], "2023-24"))
    rows.append(game(len(rows), PLAY_IN, "ATL", "BOS", "2023-24", "play_in"))
    for d in PLAYOFFS:
        rows.append(game(len(rows), d, "ATL", "DAL", "2023-24", "playoffs"))
        rows.append(game(len(rows), d, "BOS", "CHI", "2023-24", "playoffs"))
    rows.append(game(len(rows), D(2023, 10, 10), "ATL", "BOS", "2023-24", "preseason"))
    rows.append(game(len(rows), D(2023, 11, 5), "EST", "WST", "2023-24", "all_star"))
    return rows


@pytest.fixture(scope="module")
def cal() -> Calendar:
    return Calendar.from_rows(schedule())


def team_last_n(rows: list[dict[str, Any]], day: dt.date, n: int, season: str | None) -> set[dt.date]:
    """The union over all teams of each team's last n game dates before `day` (brute force)."""
    kept = [r for r in rows if r["season_type"] in ("regular", "play_in", "playoffs")
            and (season is None or r["season"] == season)]
    out: set[dt.date] = set()
    for team in {r["home_team"] for r in kept} | {r["away_team"] for r in kept}:
        mine = sorted({r["game_date"] for r in kept if team in (r["home_team"], r["away_team"])
                       and r["game_date"] < day})
        out.update(mine[-n:] if n else [])
    return out


# -- the schedule itself -----------------------------------------------------------------

def test_seasons_and_game_dates_exclude_preseason_and_all_star(cal: Calendar) -> None:
    assert list(cal.seasons) == ["2022-23", "2023-24"]
    cur = cal.seasons["2023-24"]
    assert cur.dates == tuple(sorted([*CUR_REGULAR, PLAY_IN, *PLAYOFFS]))
    assert cur.start == OPEN and cur.end == PLAYOFFS[-1]
    assert not cal.is_game_date(D(2023, 10, 10))
    assert not cal.is_game_date(D(2023, 11, 5))
    assert "EST" not in cur.teams


def test_season_types_and_teams_on_a_date(cal: Calendar) -> None:
    assert cal.season_types_on(PLAY_IN) == {"play_in"}
    assert cal.season_types_on(PLAYOFFS[0]) == {"playoffs"}
    assert cal.teams_on(PLAYOFFS[0]) == set(TEAMS)
    assert cal.season_types_on(D(2023, 10, 27)) == frozenset()


def test_off_days_and_the_break_belong_to_the_season_but_are_not_game_dates(cal: Calendar) -> None:
    for d in [D(2023, 10, 27), *BREAK]:
        assert not cal.is_game_date(d)
        assert cal.season_of(d) is None
        assert cal.season_containing(d) == "2023-24"
    assert cal.season_containing(D(2023, 7, 1)) is None
    assert cal.game_dates_between(D(2023, 11, 1), D(2023, 11, 12)) == (
        D(2023, 11, 1), D(2023, 11, 2), D(2023, 11, 10), D(2023, 11, 11))


def test_all_star_season_type_can_be_opted_in() -> None:
    with_all_star = Calendar.from_rows(schedule(), season_types=("regular", "all_star"))
    assert with_all_star.is_game_date(D(2023, 11, 5))
    assert not with_all_star.is_game_date(PLAY_IN)


# -- windows -----------------------------------------------------------------------------

def test_same_date_reads_only_the_date(cal: Calendar) -> None:
    res = cal.resolve(Window("same_date"), D(2023, 11, 10))
    assert res.dates == (D(2023, 11, 10),) and not res.cut


def test_game_dates_skip_the_all_star_break(cal: Calendar) -> None:
    res = cal.resolve(Window("game_dates", 3), D(2023, 11, 10))
    assert res.dates == (D(2023, 10, 31), D(2023, 11, 1), D(2023, 11, 2))
    assert not res.cut
    assert not set(res.dates) & set(BREAK)


def test_game_dates_skip_off_days(cal: Calendar) -> None:
    res = cal.resolve(Window("game_dates", 3), D(2023, 10, 28))
    assert res.dates == (D(2023, 10, 24), D(2023, 10, 25), D(2023, 10, 26))


def test_game_dates_on_an_off_day_count_back_from_it(cal: Calendar) -> None:
    res = cal.resolve(Window("game_dates", 2, include_current=True), D(2023, 11, 5))
    assert res.dates == (D(2023, 11, 1), D(2023, 11, 2))


def test_include_current_adds_the_date_itself(cal: Calendar) -> None:
    res = cal.resolve(Window("game_dates", 2, include_current=True), D(2023, 11, 10))
    assert res.dates == (D(2023, 11, 1), D(2023, 11, 2), D(2023, 11, 10))
    res = cal.resolve(Window("season_to_date", include_current=True), D(2023, 10, 25))
    assert res.dates == (OPEN, D(2023, 10, 25))


@pytest.mark.parametrize("day", [*CUR_REGULAR, PLAY_IN, *PLAYOFFS, *BREAK, D(2023, 11, 30)])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_team_games_is_exactly_the_union_of_each_teams_last_n_dates(cal: Calendar, day: dt.date, n: int) -> None:
    res = cal.resolve(Window("team_games", n), day)
    season = cal.season_of(day) or cal.season_containing(day)
    assert set(res.dates) == team_last_n(schedule(), day, n, season)
    assert list(res.dates) == sorted(res.dates)


@pytest.mark.parametrize("day", [OPEN, D(2023, 10, 26), D(2023, 11, 10), PLAYOFFS[-1]])
def test_team_games_across_seasons_reaches_the_previous_season(cal: Calendar, day: dt.date) -> None:
    res = cal.resolve(Window("team_games", 3, cross_season=True), day)
    assert set(res.dates) == team_last_n(schedule(), day, 3, None)


def test_team_games_is_cut_while_a_team_has_fewer_games_than_the_window(cal: Calendar) -> None:
    early = cal.resolve(Window("team_games", 3), D(2023, 10, 26))
    assert early.cut
    late = cal.resolve(Window("team_games", 3), PLAYOFFS[-1])
    assert not late.cut


def test_days_window_counts_calendar_days_but_returns_only_game_dates(cal: Calendar) -> None:
    res = cal.resolve(Window("days", 10), D(2023, 11, 11))
    assert res.dates == (D(2023, 11, 1), D(2023, 11, 2), D(2023, 11, 10))
    assert not res.cut
    res = cal.resolve(Window("days", 7, include_current=True), D(2023, 11, 10))
    assert res.dates == (D(2023, 11, 10),)  # the whole week before is the break: nothing to read


def test_days_window_stops_at_the_season_start_and_is_cut(cal: Calendar) -> None:
    res = cal.resolve(Window("days", 30), D(2023, 10, 26))
    assert res.dates == (D(2023, 10, 24), D(2023, 10, 25))
    assert res.cut


def test_days_window_across_seasons_only_reads_game_dates_in_range(cal: Calendar) -> None:
    res = cal.resolve(Window("days", 220, cross_season=True), OPEN)
    assert res.dates == tuple(d for d in PREV if d >= OPEN - dt.timedelta(days=220))


def test_season_to_date_is_every_earlier_game_date_of_the_season(cal: Calendar) -> None:
    res = cal.resolve(Window("season_to_date"), D(2023, 11, 10))
    assert res.dates == tuple(d for d in CUR_REGULAR if d < D(2023, 11, 10))
    assert cal.resolve(Window("season_to_date"), OPEN).dates == ()


def test_game_dates_stop_at_the_season_start_and_mark_the_window_cut(cal: Calendar) -> None:
    first = cal.resolve(Window("game_dates", 3), OPEN)
    assert first.dates == () and first.cut
    second = cal.resolve(Window("game_dates", 3), D(2023, 10, 25))
    assert second.dates == (OPEN,) and second.cut
    full = cal.resolve(Window("game_dates", 3), D(2023, 10, 28))
    assert not full.cut


def test_cross_season_game_dates_reach_into_the_previous_season(cal: Calendar) -> None:
    res = cal.resolve(Window("game_dates", 3, cross_season=True), D(2023, 10, 25))
    assert res.dates == (PREV[-2], PREV[-1], OPEN)
    assert not res.cut


def test_windows_never_include_dates_without_games(cal: Calendar) -> None:
    windows = [Window("game_dates", 6), Window("team_games", 4), Window("days", 40), Window("season_to_date"),
               Window("days", 300, cross_season=True), Window("team_games", 6, include_current=True)]
    for w in windows:
        for d in [*cal.dates, *BREAK]:
            res = cal.resolve(w, d)
            assert all(cal.is_game_date(x) for x in res.dates), (w, d)
            assert all(x < d for x in res.dates if x != d)


def test_from_rows_accepts_strings_and_datetimes() -> None:
    rows = [game(1, D(2024, 1, 2), "ATL", "BOS", "2023-24"), game(2, D(2024, 1, 3), "ATL", "BOS", "2023-24")]
    rows[0]["game_date"] = "2024-01-02"
    rows[1]["game_date"] = dt.datetime(2024, 1, 3, 19, 30)
    cal = Calendar.from_rows(rows)
    assert cal.dates == (D(2024, 1, 2), D(2024, 1, 3))
