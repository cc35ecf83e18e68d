"""The schedule: seasons, season types, league game dates and each team's game dates.

Every lookback window is resolved here, against game dates, so off-days and the All-Star
break are never gaps and a window never reaches across a season start unless asked to.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from backfill.spec import DEFAULT_SCHEDULE_TABLE, Window

SEASON_TYPES = ("regular", "play_in", "playoffs")
EXCLUDED_BY_DEFAULT = ("preseason", "all_star")


@dataclass(frozen=True)
class Game:
    game_id: str
    game_date: dt.date
    season: str
    season_type: str
    home_team: str
    away_team: str


@dataclass(frozen=True)
class Resolution:
    """The partitions a window needs, and whether the window was cut short (a bootstrap task)."""

    dates: tuple[dt.date, ...]
    cut: bool


@dataclass(frozen=True)
class Season:
    label: str
    start: dt.date
    end: dt.date
    dates: tuple[dt.date, ...]
    teams: frozenset[str]


class Calendar:
    """Read-only view of a schedule. Build it with `from_rows` or `from_warehouse`."""

    def __init__(self, games: Iterable[Game], season_types: Iterable[str] = SEASON_TYPES) -> None:
        allowed = set(season_types)
        self.games = [g for g in games if g.season_type in allowed]
        by_season: dict[str, set[dt.date]] = defaultdict(set)
        teams_by_season: dict[str, set[str]] = defaultdict(set)
        team_dates: dict[tuple[str, str], set[dt.date]] = defaultdict(set)
        self._types: dict[dt.date, set[str]] = defaultdict(set)
        self._teams_on: dict[dt.date, set[str]] = defaultdict(set)
        self._games_on: dict[dt.date, list[Game]] = defaultdict(list)
        self._season_of: dict[dt.date, str] = {}
        for g in self.games:
            by_season[g.season].add(g.game_date)
            self._types[g.game_date].add(g.season_type)
            self._season_of[g.game_date] = g.season
            self._games_on[g.game_date].append(g)
            for t in (g.home_team, g.away_team):
                teams_by_season[g.season].add(t)
                team_dates[(g.season, t)].add(g.game_date)
                self._teams_on[g.game_date].add(t)
        self.seasons: dict[str, Season] = {}
        for label in sorted(by_season):
            dates = tuple(sorted(by_season[label]))
            self.seasons[label] = Season(label, dates[0], dates[-1], dates, frozenset(teams_by_season[label]))
        self.dates: tuple[dt.date, ...] = tuple(sorted(self._season_of))
        self._team_dates = {k: tuple(sorted(v)) for k, v in team_dates.items()}
        self._all_team_dates: dict[str, tuple[dt.date, ...]] = {}
        merged: dict[str, set[dt.date]] = defaultdict(set)
        for (_, team), ds in self._team_dates.items():
            merged[team].update(ds)
        self._all_team_dates = {t: tuple(sorted(v)) for t, v in merged.items()}

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], season_types: Iterable[str] = SEASON_TYPES) -> Calendar:
        games = [Game(str(r["game_id"]), as_date(r["game_date"]), str(r["season"]), str(r["season_type"]),
                      str(r["home_team"]), str(r["away_team"])) for r in rows]
        return cls(games, season_types)

    @classmethod
    def from_warehouse(cls, warehouse: Any, table: str = DEFAULT_SCHEDULE_TABLE,
                       season_types: Iterable[str] = SEASON_TYPES) -> Calendar:
        from backfill.errors import BadInput
        from backfill.warehouse.schema import check_table_name

        check_table_name(table)
        if not warehouse.table_exists(table):
            raise BadInput(f"the warehouse has no schedule table {table}",
                           hint="load raw data first: `backfill data sample` or `backfill data import-nba DIR`")
        rows = warehouse.query(
            f"SELECT game_id, game_date, season, season_type, home_team, away_team FROM {table}")
        return cls.from_rows(rows, season_types)

    # -- lookups -----------------------------------------------------------------------
    def season_of(self, date: dt.date) -> str | None:
        """The season a game date belongs to (None on dates without games)."""
        return self._season_of.get(date)

    def season_containing(self, date: dt.date) -> str | None:
        """The season whose first-to-last game span contains `date`, game or not."""
        for s in self.seasons.values():
            if s.start <= date <= s.end:
                return s.label
        return None

    def season_types_on(self, date: dt.date) -> frozenset[str]:
        return frozenset(self._types.get(date, ()))

    def selected(self, date: dt.date, seasons: Iterable[str] | None = None,
                 season_types: Iterable[str] | None = None) -> bool:
        """Whether a game date is in a run's selection of seasons and season types (None: all)."""
        if seasons and self.season_of(date) not in set(seasons):
            return False
        return not season_types or bool(self.season_types_on(date) & set(season_types))

    def games_on(self, date: dt.date) -> tuple[Game, ...]:
        return tuple(self._games_on.get(date, ()))

    def teams_on(self, date: dt.date) -> frozenset[str]:
        return frozenset(self._teams_on.get(date, ()))

    def is_game_date(self, date: dt.date) -> bool:
        return date in self._season_of

    def team_dates(self, team: str, season: str | None = None) -> tuple[dt.date, ...]:
        if season is None:
            return self._all_team_dates.get(team, ())
        return self._team_dates.get((season, team), ())

    def game_dates_between(self, start: dt.date, end: dt.date) -> tuple[dt.date, ...]:
        lo = bisect.bisect_left(self.dates, start)
        hi = bisect.bisect_right(self.dates, end)
        return self.dates[lo:hi]

    # -- windows -----------------------------------------------------------------------
    def resolve(self, window: Window, date: dt.date) -> Resolution:
        """The exact upstream partition dates that a task on `date` reads through `window`."""
        season = self._season_of.get(date) or self.season_containing(date)
        if window.kind == "same_date":
            return Resolution((date,), False)
        pool = self.dates if window.cross_season or season is None else self.seasons[season].dates
        current = (date,) if window.include_current and date in self._season_of else ()
        before = bisect.bisect_left(pool, date)
        if window.kind == "game_dates":
            picked = pool[max(0, before - window.size):before]
            return Resolution(tuple(picked) + current, len(picked) < window.size)
        if window.kind == "season_to_date":
            if season is None:
                return Resolution(current, False)
            sdates = self.seasons[season].dates
            return Resolution(sdates[:bisect.bisect_left(sdates, date)] + current, False)
        if window.kind == "days":
            start = date - dt.timedelta(days=window.size)
            lo = bisect.bisect_left(pool, start)
            cut = (not window.cross_season and season is not None and start < self.seasons[season].start)
            return Resolution(tuple(pool[lo:before]) + current, cut)
        if window.kind == "team_games":
            if window.cross_season or season is None:
                teams = self._all_team_dates
                series = dict(teams)
            else:
                series = {t: self._team_dates[(season, t)] for t in self.seasons[season].teams}
            out: set[dt.date] = set()
            cut = False
            for ds in series.values():
                i = bisect.bisect_left(ds, date)
                if i < window.size:
                    cut = True
                out.update(ds[max(0, i - window.size):i])
            return Resolution(tuple(sorted(out)) + current, cut)
        raise ValueError(f"unknown window kind {window.kind}")


def as_date(value: Any) -> dt.date:
    """A date from a warehouse value: a date, a datetime, or ISO text (some warehouses return text)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
