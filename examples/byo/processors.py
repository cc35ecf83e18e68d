"""A Python processor: `team_offense_game_summary` computed in Python, written through the warehouse.

It reads the raw rows of its dates with `ctx.warehouse.query`, computes each team's line exactly
as pipelines/nba/sql/team_offense_game_summary.sql does, and writes them with `ctx.replace_rows`
(atomic and idempotent). It returns the rows it wrote; `backfill` counts them in the warehouse
anyway and holds the dates against `expect:`.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from backfill.processors.python import ProcessorContext

STATS = ("points", "fgm", "fga", "fg3m", "fg3a", "ftm", "fta", "oreb", "dreb", "ast", "tov")


def _round(x: float, digits: int) -> float:
    """SQL's ROUND: halves away from zero (Python's round() goes to even: 0.40625 -> 0.4062)."""
    return float(Decimal(repr(x)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def _ratio(a: float, b: float, digits: int) -> float | None:
    return _round(a / b, digits) if b else None


def team_offense(ctx: ProcessorContext) -> int:
    params = {"start_date": ctx.start_date, "end_date": ctx.end_date}
    box = ctx.warehouse.query(
        "SELECT game_date, season, season_type, game_id, team, opponent, is_home, "
        f"{', '.join(STATS)} FROM nba_raw.team_boxscores WHERE game_date BETWEEN @start_date AND @end_date", params)
    minutes: dict[tuple[str, str], int] = defaultdict(int)
    for r in ctx.warehouse.query("SELECT game_id, team, minutes FROM nba_raw.player_boxscores "
                                 "WHERE game_date BETWEEN @start_date AND @end_date", params):
        minutes[(r["game_id"], r["team"])] += int(_round_half_away(r["minutes"] or 0))
    length: dict[str, int] = {}
    for (game, _), m in minutes.items():
        extra = max(0, int(_round_half_away((m - 240) / 25)))
        length[game] = max(length.get(game, 48), 48 + 5 * extra)
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    for r in box:
        line = {k: r[k] for k in ("game_date", "season", "season_type", "game_id", "team", "opponent", "is_home")}
        line.update({k: r[k] or 0 for k in STATS})
        line["possessions"] = _round(float(line["fga"] - line["oreb"] + line["tov"] + 0.44 * line["fta"]), 2)
        lines[(r["game_id"], r["team"])] = line
    rows = []
    for (game, _team), g in lines.items():
        opp = lines.get((game, g["opponent"]))
        g["pace"] = (_round((g["possessions"] + opp["possessions"]) / 2 * 48 / length.get(game, 48), 2)
                     if opp is not None else None)
        g["offensive_rating"] = _ratio(100 * g["points"], g["possessions"], 2)
        g["true_shooting_pct"] = _ratio(g["points"], 2 * (g["fga"] + 0.44 * g["fta"]), 4)
        g["fg_pct"] = _ratio(g["fgm"], g["fga"], 4)
        g["fg3_pct"] = _ratio(g["fg3m"], g["fg3a"], 4)
        g["efg_pct"] = _ratio(g["fgm"] + 0.5 * g["fg3m"], g["fga"], 4)
        g["ft_rate"] = _ratio(g["fta"], g["fga"], 4)
        rows.append(g)
    ctx.log.info("team_offense: %d rows for %s..%s (options %s)", len(rows), ctx.start_date, ctx.end_date,
                 dict(ctx.options))
    return ctx.replace_rows(rows)


def _round_half_away(x: float) -> float:
    """SQL's ROUND: halves away from zero (Python's round() rounds halves to even)."""
    return float(int(abs(x) + 0.5)) * (1 if x >= 0 else -1)
