"""What tests read straight from the NBA raw schedule, so expectations never come from the planner."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import duckdb


def schedule(wh: Path, season: str = "2022-23") -> tuple[list[dt.date], dict[str, list[dt.date]]]:
    """The season's game dates (regular, play-in, playoffs) and each team's game dates, from `nba_raw.schedule`."""
    con = duckdb.connect(str(wh), read_only=True)
    try:
        rows = con.execute("SELECT game_date, home_team, away_team FROM nba_raw.schedule WHERE season = ? "
                           "AND season_type IN ('regular', 'play_in', 'playoffs')", [season]).fetchall()
    finally:
        con.close()
    teams: dict[str, set[dt.date]] = defaultdict(set)
    for day, home, away in rows:
        teams[home].add(day)
        teams[away].add(day)
    return sorted({r[0] for r in rows}), {t: sorted(ds) for t, ds in teams.items()}
