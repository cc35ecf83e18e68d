"""Import the real NBA CSVs (../shared/data/nba layout) into the raw tables, safely.

Three sources, three layouts: stats.nba.com regular-season game logs, an ~80-column playoff
export, and daily prop-line files keyed by a bookmaker hash and a UTC tip-off. Every file is
read and judged before the warehouse is touched: a missing required column, a date column that
does not parse, or a file whose rows mostly fail to parse stops the import with one line naming
the file, the column and the fix (exit 2, nothing changed). A file with one bad column used to
replace a whole season with almost nothing; that is the failure our users fear most. Rows that
are skipped for a reason we accept (a DNP row, a prop line without a game) are counted by file
and reason in the summary.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from backfill.errors import BadInput
from backfill.keys import Duplicate, duplicates_in, keep_last
from backfill.spec import load_spec
from backfill.warehouse import Warehouse
from pipelines.nba import raw
from pipelines.nba.load import (
    Rows,
    apply_replacement,
    check_season,
    plan_replacement,
    refuse_shrink,
    season_counts,
    season_of_game_id,
)
from pipelines.nba.names import player_lookup
from pipelines.nba.teams import team_abbr

EASTERN = ZoneInfo("America/New_York")
_SEASON_TYPES = {"002": "regular", "004": "playoffs", "005": "play_in"}
_COUNT_COLUMNS = [c for c, _ in raw._COUNTS]

# More than this share of a file's rows failing to parse means the file, not a few rows, is bad.
MOSTLY = 0.5
# Skips that describe the data, not a parse failure: they never make a file "mostly unparseable".
ACCEPTED_SKIPS = frozenset({"did_not_play", "no_scheduled_game"})


@dataclass(frozen=True)
class Layout:
    """One source's CSV layout: where its files are, the columns we read, and its date column."""

    folder: str
    pattern: str
    required: Mapping[str, str]  # column -> what it holds and how it must be written (for messages)
    date_column: str
    date_format: str
    rows_required: bool = True  # a game log with a header and no rows would empty its season

    def files(self, root: Path) -> list[Path]:
        return sorted((root / self.folder).glob(self.pattern))


_BOX_COLUMNS = {
    "PLAYER_ID": "the player's NBA id, a whole number",
    "PLAYER_NAME": "the player's name",
    "TEAM_ABBREVIATION": "the player's team, e.g. CLE",
    "GAME_ID": "the 10-digit NBA game id, e.g. 0022300091",
    "GAME_DATE": "the game's date, written YYYY-MM-DD",
    "MIN": "minutes played, e.g. 34 or 34:30",
    "PTS": "points scored, a whole number",
    **{c.upper(): f"{c.upper()}, a whole number or empty" for c in _COUNT_COLUMNS if c != "reb"},
    "PLUS_MINUS": "plus-minus, a whole number or empty",
}
SEASON_LOGS = Layout("player_logs", "*.csv", {**_BOX_COLUMNS, "MATCHUP": "e.g. 'CLE vs. IND' or 'NOP @ PHX'"},
                     "GAME_DATE", "YYYY-MM-DD")
PLAYOFF_LOGS = Layout("playoff_player_logs", "P*.csv",
                      {**_BOX_COLUMNS, "OPP_ABBREVIATION": "the opponent, e.g. BOS",
                       "HOME_GAME": "1 for a home game, 0 for an away game"}, "GAME_DATE", "YYYY-MM-DD")
PROP_LINES = Layout("prop_lines", "*.csv", {
    "player": "the player's name", "market": "e.g. player_points", "bookmaker": "the bookmaker's name",
    "side": "Over or Under", "line": "the line, a number", "price": "American odds, a whole number or empty",
    "home_team": "the home team's full name", "away_team": "the away team's full name",
    "game_id": "the bookmaker's game id", "commence_time": "the UTC tip-off, e.g. 2025-01-01T00:10:00Z"},
    "commence_time", "an ISO timestamp such as 2025-01-01T00:10:00Z",
    rows_required=False)  # a day without props is a real day


class SkipRow(Exception):
    """A row we cannot use; `reason` is counted in the summary, `column` names the culprit if one."""

    def __init__(self, reason: str, column: str | None = None, value: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column
        self.value = value


@dataclass
class ImportSummary:
    """Rows written per table (and per season, before and after), rows skipped, and timing."""

    directory: str
    files: int
    rows: dict[str, int]
    rows_per_season: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)  # file -> reason -> rows
    seconds: float = 0.0
    before_per_season: dict[str, dict[str, int]] = field(default_factory=dict)  # what the import replaced
    shrunk: list[str] = field(default_factory=list)  # shrinks let through by --allow-shrink
    deduplicated: dict[str, int] = field(default_factory=dict)  # table -> repeated rows dropped (--dedupe)

    @property
    def skipped_total(self) -> int:
        return sum(n for reasons in self.skipped.values() for n in reasons.values())

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for reasons in self.skipped.values():
            total.update(reasons)
        return dict(sorted(total.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"directory": self.directory, "files": self.files, "rows": self.rows,
                "rows_per_season": self.rows_per_season, "before_per_season": self.before_per_season,
                "shrunk": self.shrunk, "deduplicated": self.deduplicated, "skipped": self.skipped,
                "skipped_by_reason": self.skipped_by_reason,
                "skipped_total": self.skipped_total, "seconds": round(self.seconds, 3)}


@dataclass
class NbaData:
    """Every file read and validated, turned into raw-table rows; nothing written yet."""

    directory: str
    files: int
    tables: dict[str, Rows]
    seasons: list[str]
    skipped: dict[str, dict[str, int]]
    seconds: float  # spent reading, so the summary's time covers the whole import
    deduplicated: dict[str, int] = field(default_factory=dict)  # table -> rows dropped by --dedupe


def default_data_dir() -> Path:
    """Where the real NBA CSVs are: $BACKFILL_NBA_DATA, else `shared/data/nba` beside the checkout."""
    env = os.environ.get("BACKFILL_NBA_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nba"


_DATES: dict[str, dt.date | None] = {}


def _parse_date(text: str) -> dt.date | None:
    """ISO (`2024-04-20`) as in both game logs, `APR 20, 2024` or `04/20/2024`; None if none fits.

    Cached: a season repeats its ~200 dates 26,000 times and strptime is the import's hot spot.
    """
    if text in _DATES:
        return _DATES[text]
    found = None
    for fmt in ("%Y-%m-%d", "%b %d, %Y", "%m/%d/%Y"):
        try:
            found = dt.datetime.strptime(text.strip(), fmt).date()
            break
        except ValueError:
            continue
    if len(_DATES) < 100_000:
        _DATES[text] = found
    return found


def _date(row: Mapping[str, str], column: str) -> dt.date:
    found = _parse_date(row[column])
    if found is None:
        raise SkipRow("bad_date", column, row[column])
    return found


def _commence(text: str) -> dt.datetime | None:
    try:
        commence = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return commence if commence.tzinfo is not None else commence.replace(tzinfo=dt.UTC)


def _int(row: Mapping[str, str], column: str) -> int | None:
    text = row[column].strip()
    if text == "":
        return None
    try:
        return int(float(text))
    except ValueError:
        raise SkipRow(f"bad_number:{column}", column, text) from None


def _minutes(row: Mapping[str, str]) -> float:
    """`34`, `34.5` or `34:30` (mm:ss) -> minutes."""
    text = row["MIN"].strip()
    try:
        if not text:
            return 0.0
        if ":" in text:
            m, s = text.split(":", 1)
            return int(m) + int(s) / 60
        return float(text)
    except ValueError:
        raise SkipRow("bad_number:MIN", "MIN", text) from None


def _game_id(text: str) -> str:
    gid = text.strip()
    if gid.isdigit() and len(gid) < 10:  # a spreadsheet ate the leading zeros
        gid = gid.zfill(10)
    if len(gid) != 10 or not gid.isdigit() or gid[:3] not in _SEASON_TYPES:
        raise SkipRow("bad_game_id", "GAME_ID", text)
    return gid


def _shown(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


_COMPRESSED = ((b"PK\x03\x04", "a zip archive", "unzip it"), (b"BZh", "bzip2-compressed", "bunzip2 it"),
               (b"\xfd7zXZ", "xz-compressed", "unxz it"), (b"\x28\xb5\x2f\xfd", "zstd-compressed", "unzstd it"))


@contextmanager
def open_csv(path: Path) -> Iterator[TextIO]:
    """A CSV's text, UTF-8 (with or without a BOM), read through gzip when the file is gzip-compressed.

    Other compressions and other encodings are refused with one line that names what the file is
    and how to convert it: guessing a code page would mangle the accented names the registry joins on.
    """
    with path.open("rb") as probe:
        magic = probe.read(4)
    for prefix, what, fix in _COMPRESSED:
        if magic.startswith(prefix):
            raise BadInput(f"{_shown(path)} is {what}, not a CSV; nothing was imported",
                           hint=f"{fix} and import the CSV inside")
    opener = gzip.open if magic.startswith(b"\x1f\x8b") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
            yield fh
    except UnicodeDecodeError as exc:
        raise BadInput(f"{_shown(path)} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                       f"{exc.start}, a Windows code page such as cp1250 or cp1252?); nothing was imported",
                       hint=f"convert it, e.g. `iconv -f cp1250 -t utf-8 {path.name} > {path.stem}.utf8 && "
                            f"mv {path.stem}.utf8 {path.name}`, and import again") from None
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise BadInput(f"{_shown(path)} cannot be read: {exc}; nothing was imported",
                       hint="restore the file from its source and import again") from None


def check_header(path: Path, layout: Layout) -> None:
    """Refuse a file that lacks a column we read, before any row is parsed (cheap, so done first)."""
    with open_csv(path) as fh:
        header = next(csv.reader(fh), None)
    if header is None:
        raise BadInput(f"{_shown(path)} is empty (no header row); nothing was imported",
                       hint=f"restore the file, or move it out of {layout.folder}/, and import again")
    present = {h.strip() for h in header}
    missing = [c for c in layout.required if c not in present]
    if missing:
        more = f" (and {', '.join(missing[1:])})" if len(missing) > 1 else ""
        col = missing[0]
        raise BadInput(f"{_shown(path)} has no {col} column{more}: {layout.required[col]}; nothing was imported",
                       hint=f"re-export the file with its {col} column, or move it out of {layout.folder}/, "
                            "and import again")


@dataclass
class _FileTally:
    """What happened to one file's rows, to judge the file as a whole once it is read."""

    rows: int = 0
    bad_dates: int = 0
    date_example: str = ""
    failures: Counter[tuple[str, str | None]] = field(default_factory=Counter)
    examples: dict[tuple[str, str | None], str] = field(default_factory=dict)

    def judge(self, path: Path, layout: Layout) -> None:
        if self.rows == 0:
            if layout.rows_required:
                raise BadInput(f"{_shown(path)} has a header but no rows; nothing was imported",
                               hint=f"restore the file, or move it out of {layout.folder}/, and import again")
            return
        col = layout.date_column
        if self.bad_dates > self.rows * MOSTLY:
            raise BadInput(f"{_shown(path)}: column {col} does not parse as a date in {self.bad_dates:,} of "
                           f"{self.rows:,} rows (e.g. {self.date_example!r}); nothing was imported",
                           hint=f"write every {col} as {layout.date_format} and import again")
        failed = sum(self.failures.values())
        if failed > self.rows * MOSTLY:
            (reason, column), n = self.failures.most_common(1)[0]
            where = f" in column {column} (e.g. {self.examples[(reason, column)]!r})" if column else ""
            fix = "check the file against its source export"
            if column is not None and column in layout.required:
                fix = f"fix column {column} ({layout.required[column]})"
            raise BadInput(f"{_shown(path)}: {failed:,} of {self.rows:,} rows fail to parse, {n:,} of them "
                           f"{reason}{where}; nothing was imported", hint=f"{fix}, and import again")


class _Collector:
    """Accumulates rows of every table and the skip counts while files are read."""

    def __init__(self) -> None:
        self.schedule: dict[str, dict[str, Any]] = {}
        self.players: list[dict[str, Any]] = []
        self.registry: dict[tuple[int, str], dict[str, Any]] = {}
        self.props: list[dict[str, Any]] = []
        self.skipped: dict[str, Counter[str]] = {}
        self.line: tuple[str, int] = ("", 0)  # the file and line being read, for naming duplicates
        self.player_lines: list[tuple[str, int]] = []  # where each of `players` came from

    def skip(self, file: Path, reason: str) -> None:
        self.skipped.setdefault(file.name, Counter())[reason] += 1

    def each(self, path: Path, layout: Layout, handle: Callable[[dict[str, str]], None]) -> None:
        """Feed every row to `handle`, count what is skipped, then refuse the file if it is mostly bad."""
        tally = _FileTally()
        is_date: Callable[[str], object] = _parse_date if layout.date_column != "commence_time" else _commence
        with open_csv(path) as fh:
            reader = csv.DictReader(fh)
            reader.fieldnames = [f.strip() for f in reader.fieldnames or []]
            for row in reader:
                tally.rows += 1
                self.line = (_shown(path), reader.line_num)
                if None in row or None in row.values():  # more or fewer fields than the header
                    self.skip(path, "wrong_field_count")
                    tally.failures[("wrong_field_count", None)] += 1
                    continue
                if is_date(row[layout.date_column]) is None:
                    tally.bad_dates += 1
                    tally.date_example = tally.date_example or row[layout.date_column]
                try:
                    handle(row)
                except SkipRow as exc:
                    self.skip(path, exc.reason)
                    if exc.reason not in ACCEPTED_SKIPS:
                        key = (exc.reason, exc.column)
                        tally.failures[key] += 1
                        tally.examples.setdefault(key, exc.value or "")
        tally.judge(path, layout)

    def player_row(self, row: dict[str, str], *, team: str, opp: str, is_home: bool, season_label: str | None,
                   source: str) -> None:
        if not row["PLAYER_ID"].strip():
            raise SkipRow("missing_player_id", "PLAYER_ID", "")
        if row.get("COMMENT", "").strip().startswith("DNP"):
            raise SkipRow("did_not_play")
        gid = _game_id(row["GAME_ID"])
        season = season_of_game_id(gid)
        if season_label and season_label != season:
            raise SkipRow("season_mismatch", "SEASON_LABEL", season_label)
        game_date = _date(row, "GAME_DATE")
        if not team or not opp:
            raise SkipRow("missing_team", "TEAM_ABBREVIATION", team)
        # Every value is parsed before the game is recorded, so a row that fails adds no game.
        pid, name = _int(row, "PLAYER_ID"), row["PLAYER_NAME"].strip()
        assert pid is not None  # checked non-empty above
        stats = {c: _int(row, c.upper()) for c in _COUNT_COLUMNS if c != "reb"}
        reb = _int(row, "REB") if "REB" in row else None
        stats["reb"] = reb if reb is not None else (stats["oreb"] or 0) + (stats["dreb"] or 0)
        numbers = {"minutes": _minutes(row), "points": _int(row, "PTS"), **stats,
                   "plus_minus": _int(row, "PLUS_MINUS")}
        game = {"game_id": gid, "game_date": game_date, "season": season, "season_type": _SEASON_TYPES[gid[:3]]}
        home, away = (team, opp) if is_home else (opp, team)
        known = self.schedule.setdefault(gid, {**game, "home_team": home, "away_team": away, "source": source})
        if known["game_date"] != game_date or {known["home_team"], known["away_team"]} != {team, opp}:
            raise SkipRow("conflicts_with_other_rows_of_game")
        self.player_lines.append(self.line)
        self.players.append({**game, "player_id": pid, "player_name": name, "team": team, "opponent": opp,
                             "is_home": is_home, **numbers, "source": source})
        if (pid, name) not in self.registry:  # player_lookup is costly; once per player and name
            self.registry[(pid, name)] = {"player_id": pid, "player_name": name, "player_lookup": player_lookup(name)}


def _matchup(matchup: str) -> tuple[str, str]:
    """`CLE vs. IND` -> (home CLE, away IND); `NOP @ PHX` -> (home PHX, away NOP)."""
    if " vs. " in matchup:
        home, away = matchup.split(" vs. ", 1)
    elif " @ " in matchup:
        away, home = matchup.split(" @ ", 1)
    else:
        raise SkipRow("bad_matchup", "MATCHUP", matchup)
    return home.strip(), away.strip()


def _season_logs(c: _Collector, path: Path) -> None:
    def handle(row: dict[str, str]) -> None:
        # Neutral-site games (Mexico City, the NBA Cup semifinals) give both teams the same MATCHUP,
        # so home/away comes from the string, never from which team's row it is.
        team = row["TEAM_ABBREVIATION"].strip()
        home, away = _matchup(row["MATCHUP"].strip())
        if team not in (home, away):
            raise SkipRow("team_not_in_matchup", "MATCHUP", row["MATCHUP"])
        label = row.get("SEASON_LABEL", "").strip() or None
        if label:
            try:
                check_season(label)
            except BadInput:
                raise SkipRow("bad_season_label", "SEASON_LABEL", label) from None
        c.player_row(row, team=team, opp=away if team == home else home, is_home=team == home,
                     season_label=label, source="player_logs")
    c.each(path, SEASON_LOGS, handle)


def _playoff_logs(c: _Collector, path: Path) -> None:
    def handle(row: dict[str, str]) -> None:
        home = row["HOME_GAME"].strip()
        if home not in ("0", "1"):
            raise SkipRow("bad_home_game", "HOME_GAME", home)
        c.player_row(row, team=row["TEAM_ABBREVIATION"].strip(), opp=row["OPP_ABBREVIATION"].strip(),
                     is_home=home == "1", season_label=None, source="playoff_player_logs")
    c.each(path, PLAYOFF_LOGS, handle)


def _prop_lines(c: _Collector, path: Path, games: dict[tuple[str, str, dt.date], str]) -> None:
    def handle(row: dict[str, str]) -> None:
        home, away = team_abbr(row["home_team"]), team_abbr(row["away_team"])
        if home is None or away is None:
            raise SkipRow("unknown_team", "home_team" if home is None else "away_team",
                          row["home_team"] if home is None else row["away_team"])
        commence = _commence(row["commence_time"])
        if commence is None:
            raise SkipRow("bad_commence_time", "commence_time", row["commence_time"])
        game_date = commence.astimezone(EASTERN).date()  # 7:30 pm Eastern is already tomorrow in UTC
        if (home, away, game_date) not in games and (away, home, game_date) not in games:  # neutral sites
            raise SkipRow("no_scheduled_game")
        name = row["player"].strip()
        if not name or not row["line"].strip() or not row["side"].strip():
            raise SkipRow("missing_field")
        try:
            line = float(row["line"])
        except ValueError:
            raise SkipRow("bad_number:line", "line", row["line"]) from None
        c.props.append({"game_date": game_date, "player_name": name, "market": row["market"].strip(),
                        "line": line, "side": row["side"].strip(), "price": _int(row, "price"),
                        "bookmaker": row["bookmaker"].strip(), "home_team": home, "away_team": away,
                        "commence_time": commence.astimezone(dt.UTC), "source_game_id": row["game_id"].strip(),
                        "source": "prop_lines"})
    c.each(path, PROP_LINES, handle)


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


def stderr_progress(message: str) -> None:
    """Progress lines for long imports go to stderr, so `--json` output on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


def read_nba(directory: str | Path, progress: Callable[[str], None] | None = None, *,
             dedupe: bool = False) -> NbaData:
    """Read and validate every CSV under `directory`; raises BadInput on the first bad file.

    Pure: the warehouse is not opened, so a refused import cannot change it (or create it).
    Headers of all files are checked before any row is parsed, so a missing column costs no wait.
    """
    began = time.perf_counter()
    root = Path(directory)
    if not root.is_dir():
        raise BadInput(f"NBA data directory {root} does not exist",
                       hint="point import-nba at the folder holding player_logs/, playoff_player_logs/, prop_lines/")
    season_files, playoff_files, prop_files = (layout.files(root) for layout in (SEASON_LOGS, PLAYOFF_LOGS,
                                                                                  PROP_LINES))
    if not (season_files or playoff_files or prop_files):
        raise BadInput(f"no NBA CSVs under {root}",
                       hint="expected player_logs/*.csv, playoff_player_logs/P*.csv or prop_lines/*.csv")
    for layout, paths in ((SEASON_LOGS, season_files), (PLAYOFF_LOGS, playoff_files), (PROP_LINES, prop_files)):
        for path in paths:
            check_header(path, layout)
    say = progress or (lambda _m: None)
    c = _Collector()
    for path in season_files:
        say(f"reading {_shown(path)}")
        _season_logs(c, path)
    for path in playoff_files:
        say(f"reading {_shown(path)}")
        _playoff_logs(c, path)
    games = {(g["home_team"], g["away_team"], g["game_date"]): gid for gid, g in c.schedule.items()}
    if prop_files:
        say(f"reading {len(prop_files)} prop-line files")
    for path in prop_files:
        _prop_lines(c, path, games)
    tables = {raw.SCHEDULE.name: sorted(c.schedule.values(), key=lambda g: (g["game_date"], g["game_id"])),
              raw.PLAYER_BOXSCORES.name: c.players, raw.PROP_LINES.name: c.props,
              raw.PLAYER_REGISTRY.name: list(c.registry.values()), raw.PLAYER_ALIASES.name: []}
    lines = {raw.PLAYER_BOXSCORES.name: c.player_lines}
    dropped = enforce_keys(tables, lines, raw_keys(), dedupe)
    # Team rows are summed from the players' rows, so only after the players' keys hold.
    tables[raw.TEAM_BOXSCORES.name] = _team_boxscores(tables[raw.PLAYER_BOXSCORES.name])
    skipped = {f: dict(sorted(r.items())) for f, r in sorted(c.skipped.items())}
    return NbaData(str(root), len(season_files) + len(playoff_files) + len(prop_files), tables,
                   sorted({g["season"] for g in c.schedule.values()}), skipped, time.perf_counter() - began,
                   dropped)


def raw_keys() -> dict[str, tuple[str, ...]]:
    """The key each raw table declares in the pipeline spec (`raw_tables:`), the one place it is written."""
    spec = load_spec(Path(__file__).parent)
    return {name: t.key for name, t in spec.raw_tables.items() if t.key}


def enforce_keys(tables: dict[str, Rows], lines: Mapping[str, list[tuple[str, int]]],
                 keys: Mapping[str, tuple[str, ...]], dedupe: bool) -> dict[str, int]:
    """Refuse rows that repeat a table's key, naming the file, the lines and the key; with `dedupe`,
    keep the last copy of each (a later line of an export corrects an earlier one) and count the rest."""
    dropped: dict[str, int] = {}
    for name, key in keys.items():
        rows = tables.get(name) or []
        found = duplicates_in(rows, key)
        if not found:
            continue
        if not dedupe:
            where = lines.get(name)
            shown = "; ".join(_where_repeated(d, key, where) for d in found[:3])
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            extra = sum(len(d.positions) - 1 for d in found)
            raise BadInput(f"{extra} row(s) repeat a key of {name} ({', '.join(key)}): {shown}{more}; "
                           "nothing was imported",
                           hint="remove the repeated rows, or pass --dedupe to keep the last copy of each")
        kept, n = keep_last(rows, key)
        tables[name] = kept
        dropped[name] = n
    return dropped


def _where_repeated(dup: Duplicate, key: tuple[str, ...], where: list[tuple[str, int]] | None) -> str:
    if not where:
        return dup.describe(key)
    spots = [where[i] for i in dup.positions]
    files = {f for f, _ in spots}
    at = (f"{spots[0][0]} lines {', '.join(str(n) for _, n in spots)}" if len(files) == 1
          else ", ".join(f"{f}:{n}" for f, n in spots))
    return f"{at} {dup.describe(key)}"


def write_nba(warehouse: Warehouse, data: NbaData, *, allow_shrink: bool = False,
              progress: Callable[[str], None] | None = None) -> ImportSummary:
    """Replace the seasons `data` holds, one atomic swap per table; refuses a shrink unless allowed."""
    began = time.perf_counter()
    replacement = plan_replacement(warehouse, data.tables, data.seasons)
    if not allow_shrink:
        refuse_shrink(replacement)
    (progress or (lambda _m: None))("writing to the warehouse")
    rows = apply_replacement(warehouse, data.tables, replacement)
    return ImportSummary(data.directory, data.files, rows, season_counts(data.tables), data.skipped,
                         data.seconds + time.perf_counter() - began, replacement.before_per_season(),
                         [s.describe() for s in replacement.shrinks()], dict(data.deduplicated))


def import_nba(warehouse: Warehouse, directory: str | Path,
               progress: Callable[[str], None] | None = None, *, allow_shrink: bool = False,
               dedupe: bool = False) -> ImportSummary:
    """Read and validate every CSV under `directory`, then replace the seasons they hold.

    Rerunning changes nothing; a bad file or a shrink of more than 5% raises BadInput first.
    """
    return write_nba(warehouse, read_nba(directory, progress, dedupe=dedupe), allow_shrink=allow_shrink,
                     progress=progress)
