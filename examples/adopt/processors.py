"""Calling an existing Python processor class: the ten-line wrapper, and a stand-in for their class.

Their processors are classes run as `processor.run(opts)`, with `opts = {start_date, end_date}`
plus the backfill options (`backfill_mode`, `skip_downstream_trigger`, `strict_mode`). The wrapper
hands them over as they are; the class writes its own table, and `backfill` counts the rows in
the warehouse afterwards and holds each date to `expect:`, whatever the class says.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from backfill.processors.python import ProcessorContext
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema


def top_scorer_share(ctx: ProcessorContext) -> None:
    """The wrapper: `processor.run(opts)` with the dates and every option of the run."""
    opts = {"start_date": ctx.start_date.isoformat(), "end_date": ctx.end_date.isoformat(), **ctx.options}
    processor = TopScorerShareProcessor(ctx.warehouse, ctx.table)
    if not processor.run(opts):
        raise RuntimeError(f"TopScorerShareProcessor failed for {opts['start_date']}..{opts['end_date']}: "
                           f"{processor.error}")


class TopScorerShareProcessor:
    """Stands in for one of their classes: the share of each team's points its top scorer made."""

    def __init__(self, warehouse: Warehouse, table: TableSchema) -> None:
        self.warehouse = warehouse
        self.table = table
        self.error = ""

    def run(self, opts: dict[str, Any]) -> bool:
        params = {"start_date": opts["start_date"], "end_date": opts["end_date"]}
        teams = {(r["game_id"], r["team"]): r for r in self.warehouse.query(
            "SELECT game_date, game_id, team, points FROM adopt_analytics.team_points "
            "WHERE game_date BETWEEN CAST(@start_date AS DATE) AND CAST(@end_date AS DATE)", params)}
        best: dict[tuple[str, str], int] = defaultdict(int)
        for r in self.warehouse.query(
                "SELECT game_id, team, points FROM adopt_analytics.player_points "
                "WHERE game_date BETWEEN CAST(@start_date AS DATE) AND CAST(@end_date AS DATE)", params):
            best[(r["game_id"], r["team"])] = max(best[(r["game_id"], r["team"])], int(r["points"] or 0))
        rows = [{"game_date": t["game_date"], "game_id": g, "team": team,
                 "share": round(best[(g, team)] / t["points"], 4) if t["points"] else None,
                 "backfill_mode": opts.get("backfill_mode")} for (g, team), t in teams.items()]
        first, last = dt.date.fromisoformat(opts["start_date"]), dt.date.fromisoformat(opts["end_date"])
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        self.warehouse.replace_partitions_with_rows(self.table, days, rows)
        return True
