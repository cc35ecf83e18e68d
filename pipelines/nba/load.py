"""Writing the raw NBA tables safely, shared by the sample generator and the CSV importer.

A load replaces whole seasons (and, for tables without a season, upserts the keys it writes),
so loading the same data twice leaves the same rows. It goes in three steps:

1. `plan_replacement` reads (never writes) what each season holds now and which partition
   dates the load replaces;
2. `refuse_shrink` stops a load that would leave a season's table with more than 5% fewer rows
   than it has (a truncated export must not silently replace a good season; `--allow-shrink`
   says the shrink is meant);
3. `apply_replacement` stages every table's new rows in a scratch table first (a value the
   warehouse rejects stops the load here, with nothing replaced), then swaps each table in one
   atomic step: `Warehouse.replace_partitions` deletes the old partitions and inserts the staged
   rows in one transaction (one job on BigQuery). A crash leaves each table either all old or
   all new, never empty; rerunning the load finishes the tables it had not reached.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backfill.errors import BadInput
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema, check_table_name
from pipelines.nba import raw
from pipelines.nba.names import alias_rows

_SEASON = re.compile(r"^(\d{4})-(\d{2})$")

# A season table may lose up to this share of its rows in a replacement without --allow-shrink.
SHRINK_TOLERANCE = 0.05
_SEASON_TABLES = (raw.SCHEDULE, raw.PLAYER_BOXSCORES, raw.TEAM_BOXSCORES)

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


@dataclass(frozen=True)
class Change:
    """Rows of one table and season now, and after the load."""

    table: str
    season: str
    before: int
    after: int

    @property
    def shrinks(self) -> bool:
        return self.before > 0 and self.after < self.before * (1 - SHRINK_TOLERANCE)

    def describe(self) -> str:
        drop = 100 * (self.before - self.after) / self.before if self.before else 0.0
        return (f"{self.table} {self.season}: {self.before:,} rows now, {self.after:,} in the import "
                f"(-{drop:.1f}%)")


@dataclass(frozen=True)
class Replacement:
    """What a load will replace: partition dates per table, and rows per table and season."""

    seasons: tuple[str, ...]
    dates: dict[str, list[dt.date]]
    changes: list[Change] = field(default_factory=list)

    def shrinks(self) -> list[Change]:
        return [c for c in self.changes if c.shrinks]

    def before_per_season(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for c in self.changes:
            out.setdefault(c.table, {})[c.season] = c.before
        return out


def _per_season(rows: Rows, season_of: Mapping[dt.date, str] | None = None) -> Counter[str]:
    if season_of is None:
        return Counter(r["season"] for r in rows)
    return Counter(season_of.get(r["game_date"], "unscheduled") for r in rows)


def plan_replacement(warehouse: Warehouse, tables: Mapping[str, Rows], seasons: Iterable[str]) -> Replacement:
    """Read what `seasons` hold now and which dates each table will have replaced (no writes).

    Season tables replace the dates their old and new rows of `seasons` fall on. Prop lines carry
    no season: they are replaced on the schedule's dates of `seasons` (old and new) plus the dates
    of the new prop rows, and are counted per season through those schedules.
    """
    season_list = tuple(sorted(set(seasons)))
    dates: dict[str, list[dt.date]] = {}
    changes: list[Change] = []
    season_of: dict[dt.date, str] = {}
    for schema in _SEASON_TABLES:
        new = tables.get(schema.name, [])
        old: list[dict[str, Any]] = []
        if season_list and warehouse.table_exists(schema.name):
            old = warehouse.query(f"SELECT season, game_date, COUNT(*) AS n FROM {schema.name} "
                                  "WHERE season IN UNNEST(@s) GROUP BY 1, 2", {"s": list(season_list)})
        if schema is raw.SCHEDULE:
            season_of = {r["game_date"]: r["season"] for r in old} | {r["game_date"]: r["season"] for r in new}
        dates[schema.name] = sorted({r["game_date"] for r in old} | {r["game_date"] for r in new})
        before: Counter[str] = Counter()
        for r in old:
            before[r["season"]] += int(r["n"])
        after = _per_season(new)
        changes += [Change(schema.name, s, before[s], after[s]) for s in sorted(set(before) | set(after))]

    props = tables.get(raw.PROP_LINES.name, [])
    prop_dates = sorted(set(season_of) | {r["game_date"] for r in props})
    dates[raw.PROP_LINES.name] = prop_dates
    old_props: Counter[str] = Counter()
    if prop_dates and warehouse.table_exists(raw.PROP_LINES.name):
        for r in warehouse.query("SELECT game_date, COUNT(*) AS n FROM nba_raw.prop_lines "
                                 "WHERE game_date IN UNNEST(@d) GROUP BY 1", {"d": prop_dates}):
            old_props[season_of.get(r["game_date"], "unscheduled")] += int(r["n"])
    new_props = _per_season(props, season_of)
    changes += [Change(raw.PROP_LINES.name, s, old_props[s], new_props[s])
                for s in sorted(set(old_props) | set(new_props))]
    return Replacement(season_list, dates, changes)


def refuse_shrink(replacement: Replacement) -> None:
    """BadInput when a table's season would lose more than 5% of its rows (nothing written yet)."""
    shrinks = replacement.shrinks()
    if not shrinks:
        return
    more = ""
    if len(shrinks) > 1:
        more = f"; and {len(shrinks) - 1} more: " + "; ".join(s.describe() for s in shrinks[1:])
    raise BadInput(f"refusing to replace a season with more than {SHRINK_TOLERANCE:.0%} fewer rows: "
                   f"{shrinks[0].describe()}{more}; nothing was changed",
                   hint="check the input files are complete, or pass --allow-shrink to replace them anyway")


def _stage(warehouse: Warehouse, schema: TableSchema, rows: Rows, stages: list[str]) -> str:
    """Load `rows` into a new scratch table shaped like `schema`; its name is added to `stages`."""
    dataset, name = check_table_name(schema.name)
    stage = TableSchema(f"{dataset}._import_{name}_{uuid.uuid4().hex[:12]}", schema.columns)
    warehouse.create_table(stage)
    stages.append(stage.name)
    warehouse.insert_rows(stage.name, rows)
    return stage.name


def apply_replacement(warehouse: Warehouse, tables: Mapping[str, Rows], replacement: Replacement) -> dict[str, int]:
    """Write a planned replacement, one atomic swap per table; returns rows written per table.

    Every table's rows are staged before the first swap, so a value the warehouse rejects stops
    the load with nothing replaced. Registry rows are upserted by (player_id, player_name), alias
    rows by alias_lookup, and the known aliases are always (re)written: both only ever grow, so
    they need no shrink check.
    """
    create_raw_tables(warehouse)
    written: dict[str, int] = {}
    stages: list[str] = []
    try:
        swaps = [(schema, _stage(warehouse, schema, tables.get(schema.name, []), stages))
                 for schema in (*_SEASON_TABLES, raw.PROP_LINES) if replacement.dates[schema.name]]
        for schema, stage in swaps:
            warehouse.replace_partitions(schema, replacement.dates[schema.name], f"SELECT * FROM {stage}")
    finally:
        for stage in stages:
            warehouse.execute(f"DROP TABLE IF EXISTS {stage}")
    for schema in (*_SEASON_TABLES, raw.PROP_LINES):
        written[schema.name] = len(tables.get(schema.name, []))
    registry = _dedupe(tables.get(raw.PLAYER_REGISTRY.name, []), ("player_id", "player_name"))
    written[raw.PLAYER_REGISTRY.name] = warehouse.merge_rows(raw.PLAYER_REGISTRY, registry,
                                                             ("player_id", "player_name"))
    aliases = _dedupe([*alias_rows(), *tables.get(raw.PLAYER_ALIASES.name, [])], ("alias_lookup",))
    written[raw.PLAYER_ALIASES.name] = warehouse.merge_rows(raw.PLAYER_ALIASES, aliases, ("alias_lookup",))
    return written


def write_league(warehouse: Warehouse, tables: Mapping[str, Rows], seasons: Iterable[str], *,
                 allow_shrink: bool = False) -> dict[str, int]:
    """Replace `seasons` in every raw table with `tables` (table name -> rows); returns rows written.

    Refuses (BadInput, nothing written) when a season table would shrink by more than 5%,
    unless `allow_shrink`.
    """
    replacement = plan_replacement(warehouse, tables, seasons)
    if not allow_shrink:
        refuse_shrink(replacement)
    return apply_replacement(warehouse, tables, replacement)


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
