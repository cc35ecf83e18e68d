"""The 30 NBA teams: the abbreviation every raw table uses, and the names feeds write instead."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Team:
    abbr: str
    name: str
    conference: str  # "East" or "West"
    other_names: tuple[str, ...] = ()


TEAMS: tuple[Team, ...] = (
    Team("ATL", "Atlanta Hawks", "East"),
    Team("BOS", "Boston Celtics", "East"),
    Team("BKN", "Brooklyn Nets", "East"),
    Team("CHA", "Charlotte Hornets", "East"),
    Team("CHI", "Chicago Bulls", "East"),
    Team("CLE", "Cleveland Cavaliers", "East"),
    Team("DAL", "Dallas Mavericks", "West"),
    Team("DEN", "Denver Nuggets", "West"),
    Team("DET", "Detroit Pistons", "East"),
    Team("GSW", "Golden State Warriors", "West", ("Golden State",)),
    Team("HOU", "Houston Rockets", "West"),
    Team("IND", "Indiana Pacers", "East"),
    Team("LAC", "Los Angeles Clippers", "West", ("LA Clippers", "L.A. Clippers")),
    Team("LAL", "Los Angeles Lakers", "West", ("LA Lakers", "L.A. Lakers")),
    Team("MEM", "Memphis Grizzlies", "West"),
    Team("MIA", "Miami Heat", "East"),
    Team("MIL", "Milwaukee Bucks", "East"),
    Team("MIN", "Minnesota Timberwolves", "West"),
    Team("NOP", "New Orleans Pelicans", "West"),
    Team("NYK", "New York Knicks", "East"),
    Team("OKC", "Oklahoma City Thunder", "West"),
    Team("ORL", "Orlando Magic", "East"),
    Team("PHI", "Philadelphia 76ers", "East", ("Philadelphia Sixers",)),
    Team("PHX", "Phoenix Suns", "West"),
    Team("POR", "Portland Trail Blazers", "West", ("Portland Trailblazers",)),
    Team("SAC", "Sacramento Kings", "West"),
    Team("SAS", "San Antonio Spurs", "West"),
    Team("TOR", "Toronto Raptors", "East"),
    Team("UTA", "Utah Jazz", "West"),
    Team("WAS", "Washington Wizards", "East"),
)
BY_ABBR: dict[str, Team] = {t.abbr: t for t in TEAMS}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_NAME: dict[str, str] = {}
for _team in TEAMS:
    for _name in (_team.abbr, _team.name, *_team.other_names):
        _BY_NAME[_key(_name)] = _team.abbr


def team_abbr(full_name: str) -> str | None:
    """`Los Angeles Clippers`, `LA Clippers` or `LAC` -> `LAC`; None for a name no feed should write."""
    return _BY_NAME.get(_key(full_name))
