"""Player-registry gaps: feed names that did not resolve to a registry player, recorded not raised.

The processors' SQL joins prop lines to players by `player_lookup` (registry first, then
`nba_reference.player_aliases`) and box scores by `player_id`. A name that resolves neither way
is a *registry gap*: the users want it listed once in `nba_reference.unresolved_players`, not
alerted on every date. The row of a name is computed from the whole raw feed (first and last
date it appears, on how many dates), so writing it is a pure function of the raw data: reruns,
any task order and concurrent writers all produce the same row, and a merge keyed on
(player_name, source) never duplicates it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

from backfill.errors import TransientWarehouseError
from backfill.hooks import PostWrite, PostWriteReport
from backfill.spec import Processor
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema, schema

REGISTRY_TABLE = "nba_reference.player_registry"
ALIASES_TABLE = "nba_reference.player_aliases"
PROPS_TABLE = "nba_raw.prop_lines"
BOXSCORES_TABLE = "nba_raw.player_boxscores"

UNRESOLVED_PLAYERS: TableSchema = schema(
    "nba_reference.unresolved_players", None,
    ("player_name", "STRING", True), ("source", "STRING", True), ("first_seen", "DATE"), ("last_seen", "DATE"),
    ("count", "INT64"))

# The SQL twin of pipelines/nba/names.py:player_lookup (accents folded, punctuation and a
# trailing Jr./Sr./II/III/IV dropped, spaces removed); the processors' SQL repeats it verbatim.
_FROM = ("àáâãäåçèéêëìíîïñòóôõöùúûüýÿāăąćĉċčďēĕėęěĝğġģĥĩīĭįĵķĺļľńņňōŏőŕŗřśŝşšţťũūŭůűųŵŷźżžſơưǎǐǒǔǖǘǚǜǟǡǧǩ"
         "ǫǭǰǵǹǻȁȃȅȇȉȋȍȏȑȓȕȗșțȟȧȩȫȭȯȱȳ")
_TO = ("aaaaaaceeeeiiiinooooouuuuyyaaaccccdeeeeegggghiiiijklllnnnooorrrssssttuuuuuuwyzzzsouaiouuuuuaagkoojgn"
       "aaaeeiioorruusthaeooooy")
_WRITE_LOCK = threading.Lock()


def lookup_sql(column: str) -> str:
    """BigQuery expression computing player_lookup of `column` (must match names.player_lookup)."""
    return (f"REGEXP_REPLACE(REGEXP_REPLACE(REGEXP_REPLACE(TRANSLATE(LOWER({column}), '{_FROM}', '{_TO}'), "
            r"r'[^a-z0-9\s,]', ''), r'([\s,]+(jr|sr|ii|iii|iv))+[\s,]*$', ''), r'[^a-z0-9]', '')")


def _unresolved_props_sql() -> str:
    return f"""
    WITH feed AS (
      SELECT DISTINCT player_name, {lookup_sql('player_name')} AS name_lookup
      FROM {PROPS_TABLE} WHERE game_date IN UNNEST(@dates)
    ),
    known AS (SELECT DISTINCT player_lookup FROM {REGISTRY_TABLE})
    SELECT f.player_name FROM feed AS f
    WHERE NOT EXISTS (SELECT 1 FROM known AS k WHERE k.player_lookup = f.name_lookup)
      AND NOT EXISTS (SELECT 1 FROM {ALIASES_TABLE} AS a JOIN known AS k ON k.player_lookup = a.player_lookup
                      WHERE a.alias_lookup = f.name_lookup)
    """


def _unresolved_box_sql() -> str:
    return f"""
    SELECT DISTINCT b.player_name FROM {BOXSCORES_TABLE} AS b
    WHERE b.game_date IN UNNEST(@dates)
      AND NOT EXISTS (SELECT 1 FROM {REGISTRY_TABLE} AS r WHERE r.player_id = b.player_id)
    """


SOURCES: dict[str, str] = {PROPS_TABLE: "prop_lines", BOXSCORES_TABLE: "player_boxscores"}


def uses_registry(processor: Processor) -> bool:
    """Only processors that declare the registry as an upstream resolve names."""
    return any(d.source == REGISTRY_TABLE for d in processor.depends_on)


def unresolved_names(warehouse: Warehouse, processor: Processor, dates: Sequence[dt.date]) -> dict[str, list[str]]:
    """source table -> names on `dates` that the processor's SQL could not resolve."""
    deps = {d.source for d in processor.depends_on}
    out: dict[str, list[str]] = {}
    for table, sql in ((PROPS_TABLE, _unresolved_props_sql()), (BOXSCORES_TABLE, _unresolved_box_sql())):
        if table in deps:
            rows = warehouse.query(sql, {"dates": sorted(set(dates))})
            out[table] = sorted(str(r["player_name"]) for r in rows)
    return out


def record_unresolved(warehouse: Warehouse, processor: Processor, dates: Sequence[dt.date]) -> int:
    """Record the task's unresolved names; returns how many (name, source) pairs did not resolve.

    Raises only warehouse errors; the executor turns them into a warning, never a task failure.
    """
    names = unresolved_names(warehouse, processor, dates)
    rows = []
    for table, found in names.items():
        if not found:
            continue
        stats = warehouse.query(
            f"SELECT player_name, MIN(game_date) AS first_seen, MAX(game_date) AS last_seen, "
            f"COUNT(DISTINCT game_date) AS n FROM {table} WHERE player_name IN UNNEST(@names) GROUP BY player_name",
            {"names": found})
        rows += [{"player_name": r["player_name"], "source": SOURCES[table], "first_seen": r["first_seen"],
                  "last_seen": r["last_seen"], "count": int(r["n"])} for r in stats]
    if rows:
        _merge(warehouse, rows)
    return sum(len(v) for v in names.values())


def _merge(warehouse: Warehouse, rows: list[dict[str, object]]) -> None:
    """Every writer writes the same row for a name, so losing a conflict to another writer is fine."""
    with _WRITE_LOCK:
        for attempt in range(3):
            try:
                warehouse.merge_rows(UNRESOLVED_PLAYERS, rows, ("player_name", "source"))
                return
            except TransientWarehouseError:
                if attempt == 2:
                    raise


def record_unresolved_hook(ctx: PostWrite) -> PostWriteReport | None:
    """The pipeline's `post_write` hook: list and count the task's registry gaps."""
    if not uses_registry(ctx.processor):
        return None
    n = record_unresolved(ctx.warehouse, ctx.processor, ctx.dates)
    if not n:
        return PostWriteReport()
    return PostWriteReport([f"{n} player name(s) did not resolve through the registry "
                            f"(listed in {UNRESOLVED_PLAYERS.name})"], unresolved=n)
