"""Import the real NBA CSVs (../shared/data/nba layout) into the raw tables.

Three sources, three layouts: stats.nba.com regular-season game logs, an ~80-column playoff
export, and daily prop-line files keyed by a bookmaker hash and a UTC tip-off. Every row that
cannot be used is counted by file and reason in the summary: a backfill that silently loses
rows is the failure our users fear most.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from backfill.errors import BadInput
from backfill.warehouse import Warehouse
from pipelines.nba import raw
from pipelines.nba.load import check_season, season_counts, season_of_game_id, write_league
from pipelines.nba.names import player_lookup
from pipelines.nba.teams import team_abbr

EASTERN = ZoneInfo("America/New_York")
_SEASON_TYPES = {"002": "regular", "004": "playoffs", "005": "play_in"}
_COUNT_COLUMNS = [c for c, _ in raw._COUNTS]


class SkipRow(Exception):
    """A row we cannot use; the message is the reason counted in the summary."""


@dataclass
class ImportSummary:
    """Rows written per table (and per season), rows skipped per file and reason, and timing."""

    directory: str
    files: int
    rows: dict[str, int]
    rows_per_season: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)  # file -> reason -> rows
    seconds: float = 0.0

    @property
    def skipped_total(self) -> int:
        return sum(n for reasons in self.skipped.values() for n in reasons.values())

    def to_dict(self) -> dict[str, Any]:
        return {"directory": self.directory, "files": self.files, "rows": self.rows,
                "rows_per_season": self.rows_per_season, "skipped": self.skipped,
                "skipped_total": self.skipped_total, "seconds": round(self.seconds, 3)}


def default_data_dir() -> Path:
    """Where the real NBA CSVs are: $BACKFILL_NBA_DATA, else `shared/data/nba` beside the checkout."""
    env = os.environ.get("BACKFILL_NBA_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nba"


def _date(text: str) -> dt.date:
    """ISO (`2024-04-20`) as in both game logs, or `APR 20, 2024` as in the playoff TEAM_GAME_DATE."""
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%b %d, %Y", "%m/%d/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise SkipRow("bad_date")


def _int(text: str) -> int | None:
    text = text.strip()
    return None if text == "" else int(float(text))


def _minutes(text: str) -> float:
    """`34`, `34.5` or `34:30` (mm:ss) -> minutes."""
    text = text.strip()
    if not text:
        return 0.0
    if ":" in text:
        m, s = text.split(":", 1)
        return int(m) + int(s) / 60
    return float(text)


def _game_id(text: str) -> str:
    gid = text.strip()
    if gid.isdigit() and len(gid) < 10:  # a spreadsheet ate the leading zeros
        gid = gid.zfill(10)
    if len(gid) != 10 or not gid.isdigit() or gid[:3] not in _SEASON_TYPES:
        raise SkipRow("bad_game_id")
    return gid


class _Collector:
    """Accumulates rows of every table and the skip counts while files are read."""

    def __init__(self) -> None:
        self.schedule: dict[str, dict[str, Any]] = {}
        self.players: list[dict[str, Any]] = []
        self.registry: dict[tuple[int, str], dict[str, Any]] = {}
        self.props: list[dict[str, Any]] = []
        self.skipped: dict[str, Counter[str]] = {}

    def skip(self, file: Path, reason: str) -> None:
        self.skipped.setdefault(file.name, Counter())[reason] += 1

    def each(self, path: Path, handle: Callable[[dict[str, str]], None]) -> None:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for row in csv.DictReader(fh):
                try:
                    handle(row)
                except SkipRow as exc:
                    self.skip(path, str(exc))
                except (ValueError, KeyError):
                    self.skip(path, "unparseable")

    def player_row(self, row: dict[str, str], *, team: str, opp: str, is_home: bool, season_label: str | None,
                   source: str) -> None:
        if not row.get("PLAYER_ID", "").strip():
            raise SkipRow("missing_player_id")
        if row.get("COMMENT", "").strip().startswith("DNP"):
            raise SkipRow("did_not_play")
        gid = _game_id(row["GAME_ID"])
        season = season_of_game_id(gid)
        if season_label and season_label != season:
            raise SkipRow("season_mismatch")
        game_date = _date(row["GAME_DATE"])
        if not team or not opp:
            raise SkipRow("missing_team")
        game = {"game_id": gid, "game_date": game_date, "season": season, "season_type": _SEASON_TYPES[gid[:3]]}
        home, away = (team, opp) if is_home else (opp, team)
        known = self.schedule.setdefault(gid, {**game, "home_team": home, "away_team": away, "source": source})
        if known["game_date"] != game_date or {known["home_team"], known["away_team"]} != {team, opp}:
            raise SkipRow("conflicts_with_other_rows_of_game")
        pid, name = int(row["PLAYER_ID"]), row["PLAYER_NAME"].strip()
        stats = {c: _int(row[c.upper()]) for c in _COUNT_COLUMNS if c != "reb"}
        reb = _int(row.get("REB", ""))
        stats["reb"] = reb if reb is not None else (stats["oreb"] or 0) + (stats["dreb"] or 0)
        self.players.append({**game, "player_id": pid, "player_name": name, "team": team, "opponent": opp,
                             "is_home": is_home, "minutes": _minutes(row["MIN"]), "points": _int(row["PTS"]),
                             **stats, "plus_minus": _int(row.get("PLUS_MINUS", "")), "source": source})
        self.registry.setdefault((pid, name), {"player_id": pid, "player_name": name,
                                               "player_lookup": player_lookup(name)})


def _matchup(matchup: str) -> tuple[str, str]:
    """`CLE vs. IND` -> (home CLE, away IND); `NOP @ PHX` -> (home PHX, away NOP)."""
    if " vs. " in matchup:
        home, away = matchup.split(" vs. ", 1)
    elif " @ " in matchup:
        away, home = matchup.split(" @ ", 1)
    else:
        raise SkipRow("bad_matchup")
    return home.strip(), away.strip()


def _season_logs(c: _Collector, path: Path) -> None:
    def handle(row: dict[str, str]) -> None:
        # Neutral-site games (Mexico City, the NBA Cup semifinals) give both teams the same MATCHUP,
        # so home/away comes from the string, never from which team's row it is.
        team = row["TEAM_ABBREVIATION"].strip()
        home, away = _matchup(row["MATCHUP"].strip())
        if team not in (home, away):
            raise SkipRow("team_not_in_matchup")
        label = row.get("SEASON_LABEL", "").strip() or None
        if label:
            try:
                check_season(label)
            except BadInput:
                raise SkipRow("bad_season_label") from None
        c.player_row(row, team=team, opp=away if team == home else home, is_home=team == home,
                     season_label=label, source="player_logs")
    c.each(path, handle)


def _playoff_logs(c: _Collector, path: Path) -> None:
    def handle(row: dict[str, str]) -> None:
        home = row["HOME_GAME"].strip()
        if home not in ("0", "1"):
            raise SkipRow("bad_home_game")
        c.player_row(row, team=row["TEAM_ABBREVIATION"].strip(), opp=row["OPP_ABBREVIATION"].strip(),
                     is_home=home == "1", season_label=None, source="playoff_player_logs")
    c.each(path, handle)


def _prop_lines(c: _Collector, path: Path, games: dict[tuple[str, str, dt.date], str]) -> None:
    def handle(row: dict[str, str]) -> None:
        home, away = team_abbr(row["home_team"]), team_abbr(row["away_team"])
        if home is None or away is None:
            raise SkipRow("unknown_team")
        try:
            commence = dt.datetime.fromisoformat(row["commence_time"].strip().replace("Z", "+00:00"))
        except ValueError:
            raise SkipRow("bad_commence_time") from None
        if commence.tzinfo is None:
            commence = commence.replace(tzinfo=dt.UTC)
        game_date = commence.astimezone(EASTERN).date()  # 7:30 pm Eastern is already tomorrow in UTC
        if (home, away, game_date) not in games and (away, home, game_date) not in games:  # neutral sites
            raise SkipRow("no_scheduled_game")
        name = row["player"].strip()
        if not name or not row["line"].strip() or not row["side"].strip():
            raise SkipRow("missing_field")
        c.props.append({"game_date": game_date, "player_name": name, "market": row["market"].strip(),
                        "line": float(row["line"]), "side": row["side"].strip(), "price": _int(row["price"]),
                        "bookmaker": row["bookmaker"].strip(), "home_team": home, "away_team": away,
                        "commence_time": commence.astimezone(dt.UTC), "source_game_id": row["game_id"].strip(),
                        "source": "prop_lines"})
    c.each(path, handle)


def _team_boxscores(players: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per team and game, summed from its players (the game logs carry no team rows)."""
    teams: dict[tuple[str, str], dict[str, Any]] = {}
    for p in players:
        key = (p["game_id"], p["team"])
        t = teams.get(key)
        if t is None:
            t = teams[key] = {c: p[c] for c in ("game_id", "game_date", "season", "season_type", "team",
                                                "opponent", "is_home")}
            t.update({c: 0 for c in ("points", *_COUNT_COLUMNS)}, source=p["source"])
        for c in ("points", *_COUNT_COLUMNS):
            t[c] += p[c] or 0
    return list(teams.values())


def _files(directory: Path) -> tuple[list[Path], list[Path], list[Path]]:
    return (sorted((directory / "player_logs").glob("*.csv")),
            sorted((directory / "playoff_player_logs").glob("P*.csv")),
            sorted((directory / "prop_lines").glob("*.csv")))


def stderr_progress(message: str) -> None:
    """Progress lines for long imports go to stderr, so `--json` output on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


def import_nba(warehouse: Warehouse, directory: str | Path,
               progress: Callable[[str], None] | None = None) -> ImportSummary:
    """Read every CSV under `directory` and replace the seasons they hold; rerunning changes nothing."""
    began = time.perf_counter()
    root = Path(directory)
    if not root.is_dir():
        raise BadInput(f"NBA data directory {root} does not exist",
                       hint="point import-nba at the folder holding player_logs/, playoff_player_logs/, prop_lines/")
    season_files, playoff_files, prop_files = _files(root)
    if not (season_files or playoff_files or prop_files):
        raise BadInput(f"no NBA CSVs under {root}",
                       hint="expected player_logs/*.csv, playoff_player_logs/P*.csv or prop_lines/*.csv")
    say = progress or (lambda _m: None)
    c = _Collector()
    for path in season_files:
        say(f"reading {path.parent.name}/{path.name}")
        _season_logs(c, path)
    for path in playoff_files:
        say(f"reading {path.parent.name}/{path.name}")
        _playoff_logs(c, path)
    games = {(g["home_team"], g["away_team"], g["game_date"]): gid for gid, g in c.schedule.items()}
    if prop_files:
        say(f"reading {len(prop_files)} prop-line files")
    for path in prop_files:
        _prop_lines(c, path, games)
    tables = {raw.SCHEDULE.name: sorted(c.schedule.values(), key=lambda g: (g["game_date"], g["game_id"])),
              raw.PLAYER_BOXSCORES.name: c.players, raw.TEAM_BOXSCORES.name: _team_boxscores(c.players),
              raw.PROP_LINES.name: c.props, raw.PLAYER_REGISTRY.name: list(c.registry.values()),
              raw.PLAYER_ALIASES.name: []}
    say("writing to the warehouse")
    seasons = sorted({g["season"] for g in c.schedule.values()})
    rows = write_league(warehouse, tables, seasons)
    skipped = {f: dict(sorted(r.items())) for f, r in sorted(c.skipped.items())}
    return ImportSummary(str(root), len(season_files) + len(playoff_files) + len(prop_files), rows,
                         season_counts(tables), skipped, time.perf_counter() - began)
