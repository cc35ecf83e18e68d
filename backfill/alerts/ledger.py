"""The durable record of alerts sent, a table beside the run history (`<dataset>.backfill_alerts`).

Redis guards stop duplicate senders while Redis lives; this table is what still knows, after
Redis was flushed and the run rebuilt with `resume`, that a season's digest already went out.
Rows are only appended (a later `update` digest is a new row for the same scope); the latest
row per scope is the truth.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from backfill.warehouse import Warehouse
from backfill.warehouse.schema import TableSchema, schema


def ledger_table(history_table: str) -> str:
    return f"{history_table.split('.')[0]}.backfill_alerts"


def ledger_schema(history_table: str) -> TableSchema:
    return schema(ledger_table(history_table), None, ("run_id", "STRING", True), ("scope", "STRING", True),
                  ("kind", "STRING", True), ("fingerprint", "STRING"), ("total", "INT64"), ("sinks", "STRING"),
                  ("sent_at", "TIMESTAMP"))


def read_sent(warehouse: Warehouse, history_table: str, run_id: str) -> dict[str, str]:
    """scope -> fingerprint of the latest alert sent for it (empty if the table does not exist)."""
    table = ledger_table(history_table)
    if not warehouse.table_exists(table):
        return {}
    rows = warehouse.query(f"SELECT scope, fingerprint, sent_at FROM {table} WHERE run_id = @run_id "
                           "ORDER BY sent_at", {"run_id": run_id})
    return {str(r["scope"]): str(r["fingerprint"] or "") for r in rows}


def write_sent(warehouse: Warehouse, history_table: str, run_id: str, scope: str, kind: str, fingerprint: str,
               total: int, sinks: Sequence[str]) -> None:
    table = ledger_schema(history_table)
    warehouse.create_table(table)
    warehouse.insert_rows(table.name, [{
        "run_id": run_id, "scope": scope, "kind": kind, "fingerprint": fingerprint, "total": total,
        "sinks": ",".join(sinks), "sent_at": dt.datetime.now(dt.UTC)}])
