"""A deterministic synthetic NBA league, shaped like the real data where the engine cares.

The backfill engine's hard parts are the calendar (off-days, back-to-backs, the All-Star break,
holes before the playoffs) and the names (accents, suffixes, feed aliases), so those are
realistic; the basketball itself is only plausible. Same seed, same rows, on every machine.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import random
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from backfill.warehouse import Warehouse
from pipelines.nba import raw
from pipelines.nba.load import check_season, season_counts, write_league
from pipelines.nba.names import KNOWN_ALIASES, player_lookup
from pipelines.nba.teams import TEAMS

DEFAULT_SEASONS = ("2021-22", "2022-23", "2023-24", "2024-25")
EASTERN = ZoneInfo("America/New_York")
_SOURCE = "sample"
_FAMOUS = {  # official names the feeds misspell: accents, suffixes, nicknames
    "DEN": ["Nikola Jokić", "Vlatko Čančar"], "DAL": ["Luka Dončić", "Dāvis Bertāns"],
    "BOS": ["Kristaps Porziņģis"], "MEM": ["Jaren Jackson Jr.", "Jonas Valančiūnas"],
    "POR": ["Robert Williams III"], "NOP": ["Herbert Jones"], "ORL": ["Moritz Wagner", "Wendell Carter Jr."],
    "BKN": ["Nic Claxton"], "MIA": ["Jimmy Butler III"], "LAC": ["Brandon Boston"], "DET": ["Isaiah Stewart"],
    "HOU": ["Alperen Şengün"], "ATL": ["Bogdan Bogdanović"], "CHI": ["Nikola Vučević"],
    "TOR": ["Gary Trent Jr."], "PHI": ["Kelly Oubre Jr."], "GSW": ["Gary Payton II"],
    "SAC": ["Marvin Bagley III"], "SAS": ["Théo Maledon"], "WAS": ["Kevin Porter Jr."],
}
_FIRST = ("James", "Marcus", "Tyrese", "Jalen", "Devin", "Anthony", "Chris", "Mikal", "Jordan", "Darius",
          "Josh", "Cameron", "Malik", "Trey", "Keegan", "Aaron", "Zach", "Derrick", "Evan", "Coby", "Dejounte",
          "Ivica", "Goran", "Bojan", "Luka", "Álex", "Sékou", "Killian", "Dario", "Nikola", "Jusuf", "Dennis")
_LAST = ("Walker", "Brooks", "Harris", "Green", "Mitchell", "Murray", "Bridges", "Allen", "Hayes", "Turner",
         "Johnson", "Smith", "Porter", "Reed", "Young", "Carter", "Williams", "Holiday", "White", "Morris",
         "Zubac", "Šarić", "Nurkić", "Hernangómez", "Doumbouya", "Schröder", "Bogdanović", "Jović", "Krejčí",
         "Ntilikina", "Prince", "Dragić", "Anderson", "Thompson", "Wallace", "Collins", "Jackson", "Robinson")
_SUFFIX = ("", "", "", "", "", "", "", "", " Jr.", " II", " III")
_FEED_NAME = {official: alias for alias, official in KNOWN_ALIASES.items()}


@dataclass(frozen=True)
class GameSlot:
    game_id: str
    game_date: dt.date
    season: str
    season_type: str
    home: str
    away: str


@dataclass(frozen=True)
class PlayerProfile:
    """How a player tends to play; drawn once per seed, so a player's game is stable across seasons."""

    player_id: int
    name: str
    weight: float  # share of his team's minutes when he plays
    usage: float  # field-goal attempts per minute
    three_rate: float
    ft_rate: float
    reb_rate: float
    ast_rate: float

    @classmethod
    def random(cls, rng: random.Random, player_id: int, name: str, rank: int) -> PlayerProfile:
        weight = max(0.4, 34 - rank * 2.6 + rng.uniform(-3, 3))
        return cls(player_id, name, weight, rng.uniform(0.22, 0.45) * (1.2 if rank < 3 else 1.0),
                   rng.uniform(0.15, 0.55), rng.uniform(0.08, 0.28), rng.uniform(0.08, 0.3), rng.uniform(0.05, 0.25))


@dataclass
class LoadSummary:
    """What a sample load wrote: rows per table, per season, and how long it took."""

    seasons: list[str]
    seed: int
    rows: dict[str, int]
    rows_per_season: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"seasons": self.seasons, "seed": self.seed, "rows": self.rows,
                "rows_per_season": self.rows_per_season, "seconds": round(self.seconds, 3)}


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def season_bounds(season: str) -> tuple[dt.date, dt.date]:
    """Opening night (the Tuesday on or after Oct 18) and the last regular-season day (2nd Sunday of April)."""
    year = int(check_season(season)[:4])
    oct18 = dt.date(year, 10, 18)
    return oct18 + dt.timedelta(days=(1 - oct18.weekday()) % 7), _nth_weekday(year + 1, 4, 6, 2)


def _no_game_days(season: str) -> set[dt.date]:
    """Thanksgiving, Christmas Eve and the week around All-Star Sunday (3rd Sunday of February)."""
    year = int(season[:4])
    all_star = _nth_weekday(year + 1, 2, 6, 3)
    return ({_nth_weekday(year, 11, 3, 4), dt.date(year, 12, 24)}
            | {all_star + dt.timedelta(days=d) for d in range(-3, 4)})


def _roster(rng: random.Random) -> dict[str, list[PlayerProfile]]:
    """13-15 players per team; ids and names depend only on the seed, so they hold across seasons."""
    lookups: set[str] = set()
    rosters: dict[str, list[PlayerProfile]] = {}
    next_id = 1_630_001
    for team in TEAMS:
        names = list(_FAMOUS.get(team.abbr, []))
        lookups.update(player_lookup(n) for n in names)
        size = rng.randint(13, 15)
        while len(names) < size:
            name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}{rng.choice(_SUFFIX)}"
            if player_lookup(name) not in lookups:
                lookups.add(player_lookup(name))
                names.append(name)
        players = []
        for rank, name in enumerate(names):
            players.append(PlayerProfile.random(rng, next_id, name, rank))
            next_id += 1
        rosters[team.abbr] = players
    return rosters


def _game_counts(rng: random.Random, dates: Sequence[dt.date], total: int) -> list[int]:
    """Games per date: busy Wednesdays, Fridays and Saturdays, quiet Mondays, Thursdays and Sundays."""
    weight = {0: 5.0, 1: 7.0, 2: 10.0, 3: 5.0, 4: 10.0, 5: 8.5, 6: 6.0}
    raw_w = [weight[d.weekday()] * rng.uniform(0.7, 1.3) for d in dates]
    scale = total / sum(raw_w)
    counts = [max(2, min(13, int(w * scale))) for w in raw_w]
    order = sorted(range(len(dates)), key=lambda i: raw_w[i] * scale - counts[i], reverse=True)
    i = 0
    while sum(counts) != total:
        j = order[i % len(order)]
        step = 1 if sum(counts) < total else -1
        if 2 <= counts[j] + step <= 13:
            counts[j] += step
        i += 1
    return counts


def regular_season(rng: random.Random, season: str) -> list[GameSlot]:
    """82 games a team over ~160 dates: the most-behind teams play first, three nights in a row avoided."""
    start, end = season_bounds(season)
    blocked = _no_game_days(season)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    dates = [d for d in days if d not in blocked]
    for d in rng.sample(dates[1:-1], 4):  # a few league-wide off days, like the real calendar
        dates.remove(d)
    counts = _game_counts(rng, dates, 1230)
    left = {t.abbr: 82 for t in TEAMS}
    home_left = {t.abbr: 41 for t in TEAMS}
    played: dict[str, list[dt.date]] = {t.abbr: [] for t in TEAMS}
    yy = season[2:4]
    games: list[GameSlot] = []
    for i, (day, n) in enumerate(zip(dates, counts, strict=True)):
        dates_left = len(dates) - i
        slots_left = sum(counts[i:])

        def urgency(team: str, day: dt.date = day, dates_left: int = dates_left, slots_left: int = slots_left) -> float:
            recent = played[team][-2:]
            tired = len(recent) == 2 and (day - recent[0]).days == 2
            must = left[team] >= dates_left
            return (left[team] / dates_left) * (1 + 82 / max(slots_left, 1)) + (10 if must else 0) \
                - (0.5 if tired else 0) + rng.random() * 0.3

        teams = sorted((t for t in left if left[t] > 0), key=urgency, reverse=True)[: 2 * n]
        rng.shuffle(teams)
        for a, b in zip(teams[::2], teams[1::2], strict=True):
            home, away = (a, b) if home_left[a] >= home_left[b] else (b, a)
            home_left[home] -= 1
            for t in (a, b):
                left[t] -= 1
                played[t].append(day)
            games.append(GameSlot(f"002{yy}{len(games) + 1:05d}", day, season, "regular", home, away))
    short = {t: n for t, n in left.items() if n}
    if short:
        raise AssertionError(f"sample schedule for {season} left games unplayed: {short}")
    return games


def _binom(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw; the normal approximation once it is good, because exact draws dominated the run time."""
    if n <= 0:
        return 0
    var = n * p * (1 - p)
    if var > 4:
        return min(n, max(0, round(rng.gauss(n * p, var ** 0.5))))
    if p >= 1:
        return n
    u, k = rng.random(), 0
    prob = cdf = (1 - p) ** n
    while u > cdf and k < n:  # inverse CDF: one uniform draw instead of n
        prob *= (n - k) / (k + 1) * p / (1 - p)
        k += 1
        cdf += prob
    return k


def _minutes(rng: random.Random, roster: Sequence[PlayerProfile]) -> list[tuple[PlayerProfile, int]]:
    """Integer minutes summing to 240 over a 9-12 man rotation; the rest have no row (did not play)."""
    active = [p for i, p in enumerate(roster)
              if (rng.random() > 0.03 if i < 8 else rng.random() < 0.75 - 0.15 * (i - 8))]
    weights = [p.weight * rng.uniform(0.75, 1.25) for p in active]
    share = [240 * w / sum(weights) for w in weights]
    share = [min(s, 44.0) for s in share]
    mins = [int(s) for s in share]
    by_frac = sorted(range(len(mins)), key=lambda i: share[i] - mins[i], reverse=True)
    k = 0
    while sum(mins) < 240:
        j = by_frac[k % len(by_frac)]
        if mins[j] < 48:
            mins[j] += 1
        k += 1
    return list(zip(active, mins, strict=True))


class _League:
    """Plays games one at a time (postseason pairings need the winners) and collects the rows."""

    def __init__(self, rng: random.Random, rosters: dict[str, list[PlayerProfile]]) -> None:
        self.rng = rng
        self.rosters = rosters
        self.strength = {t: rng.uniform(0.93, 1.07) for t in rosters}
        self.players: list[dict[str, Any]] = []
        self.teams: list[dict[str, Any]] = []
        self.props: list[dict[str, Any]] = []
        self.schedule: list[dict[str, Any]] = []
        self._feed_game: tuple[str, dict[str, Any]] = ("", {})

    def _box(self, slot: GameSlot, team: str) -> list[dict[str, Any]]:
        rng, skill = self.rng, self.strength[team]
        rows = []
        for p, m in _minutes(rng, self.rosters[team]):
            fga = max(0, round(m * p.usage * rng.uniform(0.7, 1.3)))
            fg3a = _binom(rng, fga, p.three_rate)
            fg3m = _binom(rng, fg3a, 0.36 * skill)
            fgm = fg3m + _binom(rng, fga - fg3a, 0.52 * skill)
            fta = _binom(rng, m // 2, p.ft_rate)
            ftm = _binom(rng, fta, 0.78)
            oreb = _binom(rng, m // 3, p.reb_rate * 0.3)
            dreb = _binom(rng, m * 2 // 3, p.reb_rate)
            rows.append({"player_id": p.player_id, "player_name": p.name, "minutes": float(m),
                         "points": 2 * fgm + fg3m + ftm, "fgm": fgm, "fga": fga, "fg3m": fg3m, "fg3a": fg3a,
                         "ftm": ftm, "fta": fta, "oreb": oreb, "dreb": dreb, "reb": oreb + dreb,
                         "ast": _binom(rng, m // 2, p.ast_rate), "stl": _binom(rng, m // 4, 0.1),
                         "blk": _binom(rng, m // 4, 0.08), "tov": _binom(rng, m // 3, 0.15),
                         "pf": min(6, _binom(rng, m // 3, 0.2))})
        return rows

    def play(self, slot: GameSlot) -> str:
        """Generate the game's rows and return the winner."""
        game = {"game_id": slot.game_id, "game_date": slot.game_date, "season": slot.season,
                "season_type": slot.season_type}
        self.schedule.append({**game, "home_team": slot.home, "away_team": slot.away, "source": _SOURCE})
        boxes = {slot.home: self._box(slot, slot.home), slot.away: self._box(slot, slot.away)}
        pts = {t: sum(r["points"] for r in rows) for t, rows in boxes.items()}
        if pts[slot.home] == pts[slot.away]:  # no ties in basketball: the home star hits one more free throw
            star = boxes[slot.home][0]
            star.update(ftm=star["ftm"] + 1, fta=star["fta"] + 1, points=star["points"] + 1)
            pts[slot.home] += 1
        for team, opp in ((slot.home, slot.away), (slot.away, slot.home)):
            margin = pts[team] - pts[opp]
            common = {**game, "team": team, "opponent": opp, "is_home": team == slot.home}
            for r in boxes[team]:
                r.update(common, plus_minus=round(margin * r["minutes"] / 48) + self.rng.randint(-3, 3),
                         source=_SOURCE)
                self.players.append(r)
                self._props(slot, r)
            totals = {c: sum(r[c] for r in boxes[team]) for c in ("points", *[c for c, _ in raw._COUNTS])}
            self.teams.append({**common, **totals, "source": _SOURCE})
        return slot.home if pts[slot.home] > pts[slot.away] else slot.away

    def _props(self, slot: GameSlot, row: dict[str, Any]) -> None:
        """Lines for ~70% of players with 20+ minutes, named the feed's way (no accents, nicknames)."""
        rng = self.rng
        if row["minutes"] < 20 or rng.random() > 0.7:
            return
        if self._feed_game[0] != slot.game_id:
            local = dt.datetime.combine(slot.game_date, dt.time(22 if slot.home in _WEST else 19,
                                                                rng.choice((0, 30))), EASTERN)
            self._feed_game = (slot.game_id, {
                "game_date": slot.game_date, "home_team": slot.home, "away_team": slot.away,
                "commence_time": local.astimezone(dt.UTC),
                "source_game_id": hashlib.md5(slot.game_id.encode()).hexdigest(), "source": _SOURCE})
        base = {**self._feed_game[1], "player_name": feed_name(row["player_name"])}
        for market, stat, chance in (("player_points", "points", 1.0), ("player_rebounds", "reb", 0.5),
                                     ("player_assists", "ast", 0.3)):
            for book in ("PrizePicks", "Underdog"):
                if rng.random() < chance:
                    line = int(row[stat] * rng.uniform(0.75, 1.25)) + 0.5
                    price = -rng.randint(105, 140)
                    for side in ("Over", "Under"):
                        self.props.append({**base, "market": market, "line": line, "side": side,
                                           "price": price, "bookmaker": book})


_WEST = frozenset(t.abbr for t in TEAMS if t.conference == "West")


@functools.cache
def feed_name(official: str) -> str:
    """How prop feeds write a name: their nickname if they have one, else no accents and no dots in suffixes."""
    if official in _FEED_NAME:
        return _FEED_NAME[official]
    plain = "".join(ch for ch in unicodedata.normalize("NFKD", official) if not unicodedata.combining(ch))
    return plain.removesuffix(".")


def _seeds(league: _League, games: Sequence[GameSlot], winners: Sequence[str]) -> dict[str, list[str]]:
    """Each conference's teams ordered by regular-season wins (ties broken by team strength)."""
    wins = {t.abbr: 0 for t in TEAMS}
    for w in winners:
        wins[w] += 1
    out: dict[str, list[str]] = {}
    for conf in ("East", "West"):
        teams = [t.abbr for t in TEAMS if t.conference == conf]
        out[conf] = sorted(teams, key=lambda t: (-wins[t], -league.strength[t]))
    return out


def _play_in(league: _League, season: str, end: dt.date, seeds: dict[str, list[str]]) -> dict[str, list[str]]:
    """Seeds 7-10 play for the last two places: East on Tuesday, West on Wednesday, deciders on Friday."""
    yy, n, top = season[2:4], 0, {}
    for day_offset, conf in ((2, "East"), (3, "West")):
        s = seeds[conf]
        day = end + dt.timedelta(days=day_offset)
        n += 1
        w78 = league.play(GameSlot(f"005{yy}00{n:03d}", day, season, "play_in", s[6], s[7]))
        n += 1
        w910 = league.play(GameSlot(f"005{yy}00{n:03d}", day, season, "play_in", s[8], s[9]))
        top[conf] = (w78, s[7] if w78 == s[6] else s[6], w910)
    for conf in ("East", "West"):
        w78, l78, w910 = top[conf]
        n += 1
        last = league.play(GameSlot(f"005{yy}00{n:03d}", end + dt.timedelta(days=5), season, "play_in", l78, w910))
        seeds[conf] = [*seeds[conf][:6], w78, last]
    return seeds


def _series(league: _League, season: str, rnd: int, k: int, start: dt.date, high: str, low: str) -> tuple[str, dt.date]:
    """Best of seven, 2-2-1-1-1 home court, a game every other day; returns the winner and last date."""
    wins = {high: 0, low: 0}
    day, g = start, 0
    while True:
        g += 1
        home, away = (high, low) if g in (1, 2, 5, 7) else (low, high)
        wins[league.play(GameSlot(f"004{season[2:4]}00{rnd}{k}{g}", day, season, "playoffs", home, away))] += 1
        if max(wins.values()) == 4:
            return (high if wins[high] == 4 else low), day
        day += dt.timedelta(days=2 if g != 4 else 3)


def _playoffs(league: _League, season: str, end: dt.date, seeds: dict[str, list[str]]) -> None:
    """Four rounds from the Saturday after the play-in; the Finals open on the first Thursday of June."""
    rank = {t: i for conf in seeds for i, t in enumerate(seeds[conf][:8])}
    bracket = {conf: [s[0], s[7], s[3], s[4], s[2], s[5], s[1], s[6]] for conf, s in seeds.items()}
    start = end + dt.timedelta(days=6)
    for rnd in (1, 2, 3):
        last, k = start, 0
        for conf in ("East", "West"):
            teams, nxt = bracket[conf], []
            for a, b in zip(teams[::2], teams[1::2], strict=True):
                high, low = (a, b) if rank[a] <= rank[b] else (b, a)
                winner, ended = _series(league, season, rnd, k, start + dt.timedelta(days=k % 2), high, low)
                nxt.append(winner)
                last, k = max(last, ended), k + 1
            bracket[conf] = nxt
        start = last + dt.timedelta(days=2)
    year = int(season[:4]) + 1
    finals = max(_nth_weekday(year, 6, 3, 1), start)
    east, west = bracket["East"][0], bracket["West"][0]
    high, low = (east, west) if league.strength[east] >= league.strength[west] else (west, east)
    _series(league, season, 4, 0, finals, high, low)


def generate_league(seasons: Sequence[str] = DEFAULT_SEASONS, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """Every raw table's rows for `seasons`: table name -> list of row dicts, identical for the same seed."""
    for s in seasons:
        check_season(s)
    rosters = _roster(random.Random(seed))
    league = _League(random.Random(seed), rosters)
    for season in sorted(set(seasons)):
        league.rng = random.Random(f"{seed}:{season}")
        games = regular_season(league.rng, season)
        winners = [league.play(g) for g in games]
        end = season_bounds(season)[1]
        seeds = _play_in(league, season, end, _seeds(league, games, winners))
        _playoffs(league, season, end, seeds)
    registry = [{"player_id": p.player_id, "player_name": p.name, "player_lookup": player_lookup(p.name)}
                for roster in rosters.values() for p in roster]
    return {raw.SCHEDULE.name: league.schedule, raw.PLAYER_BOXSCORES.name: league.players,
            raw.TEAM_BOXSCORES.name: league.teams, raw.PROP_LINES.name: league.props,
            raw.PLAYER_REGISTRY.name: registry, raw.PLAYER_ALIASES.name: []}


def load_sample(warehouse: Warehouse, seasons: Sequence[str] = DEFAULT_SEASONS, seed: int = 7, *,
                allow_shrink: bool = False) -> LoadSummary:
    """Generate the league and replace those seasons in the warehouse (twice in a row = same rows).

    Like an import, it refuses to replace a season with more than 5% fewer rows (e.g. real data
    already loaded) unless `allow_shrink`.
    """
    began = time.perf_counter()
    tables = generate_league(seasons, seed)
    rows = write_league(warehouse, tables, seasons, allow_shrink=allow_shrink)
    return LoadSummary(sorted(set(seasons)), seed, rows, season_counts(tables), time.perf_counter() - began)
