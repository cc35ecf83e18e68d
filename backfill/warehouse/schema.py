"""Table schemas in BigQuery's vocabulary, so one declaration serves every warehouse."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from backfill.errors import BadInput

TYPES = ("STRING", "INT64", "FLOAT64", "NUMERIC", "BOOL", "DATE", "TIMESTAMP", "JSON")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_identifier(name: str, what: str = "identifier") -> str:
    """Refuse anything but a plain identifier before it is spliced into SQL."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise BadInput(f"invalid {what} {name!r}: use letters, digits and underscores, starting with a letter")
    return name


def check_table_name(name: str) -> tuple[str, str]:
    """`dataset.table` -> (dataset, table), both validated as identifiers."""
    parts = name.split(".") if isinstance(name, str) else []
    if len(parts) != 2:
        raise BadInput(f"invalid table name {name!r}: expected dataset.table")
    return check_identifier(parts[0], "dataset name"), check_identifier(parts[1], "table name")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False

    def __post_init__(self) -> None:
        check_identifier(self.name, "column name")
        if self.type not in TYPES:
            raise BadInput(f"column {self.name}: unknown type {self.type!r} (one of {', '.join(TYPES)})")


@dataclass(frozen=True)
class TableSchema:
    """A table: its `dataset.table` name, columns, and the DATE column it is partitioned by."""

    name: str
    columns: tuple[Column, ...]
    partition: str | None = None
    cluster: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_table_name(self.name)
        names = [c.name for c in self.columns]
        if self.partition and self.partition not in names:
            raise BadInput(f"table {self.name}: partition column {self.partition!r} is not a column")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def cast_select_list(self) -> str:
        """`CAST(c AS TYPE) AS c, ...` in BigQuery's dialect: every warehouse writes a processor's
        rows through the same explicit casts, so a column's values cannot differ by warehouse
        (an implicit INSERT cast may round or truncate differently)."""
        return ", ".join(c.name if c.type == "JSON" else f"CAST({c.name} AS {c.type}) AS {c.name}"
                         for c in self.columns)


def schema(name: str, partition: str | None, *cols: tuple[str, str] | tuple[str, str, bool],
           cluster: tuple[str, ...] = ()) -> TableSchema:
    """Compact constructor: schema('ds.t', 'game_date', ('game_date', 'DATE', True), ...)."""
    return TableSchema(name, tuple(Column(*c) for c in cols), partition, cluster)
