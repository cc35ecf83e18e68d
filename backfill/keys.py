"""Declared keys: finding rows that share one, in rows about to be loaded and in written tables.

A processor's `key:` (and a raw table's) says which columns identify one row. Two rows with
the same key are one fact counted twice: team totals double a player's points, and nothing
downstream can tell. The raw import refuses them before writing (or keeps the last copy with
`--dedupe`), the executor checks every written partition, and `validate` checks whole
selections; all three use this module, so "duplicate" means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

EXAMPLE_NULL = "NULL"


@dataclass(frozen=True)
class Duplicate:
    """One key that more than one row carries, and where those rows are (their indexes)."""

    key: tuple[Any, ...]
    positions: tuple[int, ...]

    def describe(self, columns: Sequence[str]) -> str:
        return "(" + ", ".join(f"{c}={v}" for c, v in zip(columns, self.key, strict=False)) + ")"


def duplicates_in(rows: Sequence[Mapping[str, Any]], key: Sequence[str]) -> list[Duplicate]:
    """Keys carried by more than one of `rows`, in order of first appearance."""
    seen: dict[tuple[Hashable, ...], list[int]] = {}
    for i, row in enumerate(rows):
        seen.setdefault(tuple(row.get(c) for c in key), []).append(i)
    return [Duplicate(k, tuple(at)) for k, at in seen.items() if len(at) > 1]


def keep_last(rows: Sequence[Mapping[str, Any]], key: Sequence[str]) -> tuple[list[Any], int]:
    """`rows` with only the last copy of each key kept (the most recent line of an export wins),
    in their original order, and how many were dropped."""
    last: dict[tuple[Hashable, ...], int] = {}
    for i, row in enumerate(rows):
        last[tuple(row.get(c) for c in key)] = i
    kept = [row for i, row in enumerate(rows) if last[tuple(row.get(c) for c in key)] == i]
    return kept, len(rows) - len(kept)


def key_text_sql(key: Sequence[str]) -> str:
    """One string per key, for naming an example in a message (NULL written out, never dropped)."""
    parts = [f"COALESCE(CAST({c} AS STRING), '{EXAMPLE_NULL}')" for c in key]
    return "CONCAT(" + ", ', ', ".join(parts) + ")" if len(parts) > 1 else parts[0]


def partition_figures_sql(table: str, partition: str, key: Sequence[str], counts: Mapping[str, str],
                          where: str) -> str:
    """Per partition: rows (`n`), each of `counts` (alias -> condition, counted), and, with a key,
    `dup_keys` (keys with more than one row), `dup_rows` (the extra rows) and `dup_example`.

    One query (one scan) either way: with a key, rows are first grouped by partition and key, and
    the condition counts are summed over those groups, so the post-write checks cost no more
    queries than before the key was checked.
    """
    if not key:
        cols = ", ".join(["COUNT(*) AS n", *(f"COUNTIF({cond}) AS {alias}" for alias, cond in counts.items())])
        return f"SELECT {partition} AS d, {cols} FROM {table} WHERE {where} GROUP BY 1"
    group = [c for c in key if c != partition]
    inner = ", ".join([f"{partition} AS d", "COUNT(*) AS c", f"{key_text_sql(key)} AS k",
                       *(f"COUNTIF({cond}) AS {alias}" for alias, cond in counts.items())])
    outer = ", ".join(["SUM(c) AS n", *(f"SUM({alias}) AS {alias}" for alias in counts),
                       "COUNTIF(c > 1) AS dup_keys", "SUM(IF(c > 1, c - 1, 0)) AS dup_rows",
                       "MIN(IF(c > 1, k, NULL)) AS dup_example"])
    by = ", ".join([partition, *group])
    return (f"SELECT d, {outer} FROM (SELECT {inner} FROM {table} WHERE {where} GROUP BY {by}) AS per_key "
            "GROUP BY d")


def duplicates_sql(table: str, partition: str | None, key: Sequence[str], where: str = "TRUE") -> str:
    """Keys with more than one row, counted per partition (`d` is NULL for an unpartitioned table):
    `dup_keys`, `dup_rows` (the extra rows) and one `dup_example`."""
    d = f"{partition}" if partition else "CAST(NULL AS DATE)"
    group = ", ".join([*([partition] if partition else []), *(c for c in key if c != partition)])
    return (f"SELECT d, COUNT(*) AS dup_keys, SUM(c - 1) AS dup_rows, MIN(k) AS dup_example FROM "
            f"(SELECT {d} AS d, COUNT(*) AS c, {key_text_sql(key)} AS k FROM {table} WHERE {where} "
            f"GROUP BY {group} HAVING COUNT(*) > 1) AS dup GROUP BY d")


def describe_duplicates(table: str, key: Sequence[str], dup_keys: int, dup_rows: int, example: Any) -> str:
    """The one message for a duplicated key, wherever it is found."""
    return (f"{table}: {dup_keys} key(s) ({', '.join(key)}) held by more than one row ({dup_rows} extra row(s)), "
            f"e.g. ({example})")
