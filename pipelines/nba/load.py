"""Writing the raw NBA tables idempotently, shared by the sample generator and the CSV importer.

A load replaces whole seasons (and, for tables without a season, the keys it writes), so
loading the same data twice leaves the same rows. Each table is a delete followed by one bulk
insert: the Warehouse interface has no multi-statement transaction, so a crash between the two
leaves that table's seasons empty (never duplicated); rerunning the load repairs it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from backfill.errors import BadInput
from backfill.warehouse import Warehouse
from pipelines.nba import raw
from pipelines.nba.names import alias_rows

_SEASON = re.compile(r"^(\d{4})-(\d{2})$")

Rows = list[dict[str, Any]]


def check_season(label: str) -> str:
    """`2023-24` is a season; `2023`, `2023-2024` and `2023-25` are mistakes worth stopping for."""
    m = _SEASON.match(label.strip())
    if not m or (int(m.group(1)) + 1) % 100 != int(m.group(2)):
        raise BadInput(f"unknown season label {label!r}: write seasons like 2023-24")
    return label.strip()


def season_of_game_id(game_id: str) -> str:
    """`0022300091` -> `2023-24`: digits 4-5 of an NBA game id are the season's first year."""
    start = 2000 + int(game_id[3:5])
    return f"{start}-{(start + 1) % 100:02d}"


def create_raw_tables(warehouse: Warehouse) -> None:
    for table in raw.RAW_TABLES:
        warehouse.create_table(table)


def _replace(warehouse: Warehouse, table: str, rows: Rows, column: str, values: Sequence[Any]) -> int:
    if values:
        warehouse.execute(f"DELETE FROM {table} WHERE {column} IN UNNEST(@values)", {"values": list(values)})
    return warehouse.insert_rows(table, rows)


def write_league(warehouse: Warehouse, tables: Mapping[str, Rows], seasons: Iterable[str]) -> dict[str, int]:
    """Replace `seasons` in every raw table with `tables` (table name -> rows); returns rows written.

    Prop lines carry no season, so they are replaced by the schedule's game dates of `seasons`
    plus the dates of the new prop rows. Registry rows are replaced by player_id, alias rows by
    alias_lookup, and the known aliases are always (re)written.
    """
    create_raw_tables(warehouse)
    season_list = sorted(set(seasons))
    written: dict[str, int] = {}
    props = tables.get(raw.PROP_LINES.name, [])
    dates = {r["game_date"] for r in tables.get(raw.SCHEDULE.name, [])} | {r["game_date"] for r in props}
    if season_list:  # the dates these seasons had before, so their old prop lines go too
        old = warehouse.query("SELECT DISTINCT game_date FROM nba_raw.schedule WHERE season IN UNNEST(@s)",
                              {"s": season_list})
        dates |= {r["game_date"] for r in old}
    for schema in (raw.SCHEDULE, raw.PLAYER_BOXSCORES, raw.TEAM_BOXSCORES):
        written[schema.name] = _replace(warehouse, schema.name, tables.get(schema.name, []), "season", season_list)

    written[raw.PROP_LINES.name] = _replace(warehouse, raw.PROP_LINES.name, props, "game_date", sorted(dates))

    registry = _dedupe(tables.get(raw.PLAYER_REGISTRY.name, []), ("player_id", "player_name"))
    written[raw.PLAYER_REGISTRY.name] = _replace(warehouse, raw.PLAYER_REGISTRY.name, registry, "player_id",
                                                 sorted({r["player_id"] for r in registry}))
    aliases = _dedupe([*alias_rows(), *tables.get(raw.PLAYER_ALIASES.name, [])], ("alias_lookup",))
    written[raw.PLAYER_ALIASES.name] = _replace(warehouse, raw.PLAYER_ALIASES.name, aliases, "alias_lookup",
                                                sorted({r["alias_lookup"] for r in aliases}))
    return written


def _dedupe(rows: Rows, key: Sequence[str]) -> Rows:
    seen: set[tuple[Any, ...]] = set()
    out: Rows = []
    for r in rows:
        k = tuple(r[c] for c in key)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def table_counts(warehouse: Warehouse) -> dict[str, int]:
    """Rows now in each raw table, for summaries and idempotency checks."""
    return {t.name: int(warehouse.query(f"SELECT COUNT(*) AS n FROM {t.name}")[0]["n"]) for t in raw.RAW_TABLES}


def season_counts(tables: Mapping[str, Rows]) -> dict[str, dict[str, int]]:
    """Rows per season of each table that has a season column (what a summary prints)."""
    out: dict[str, dict[str, int]] = {}
    for name, rows in tables.items():
        if rows and "season" in rows[0]:
            out[name] = dict(sorted(Counter(r["season"] for r in rows).items()))
    return out
