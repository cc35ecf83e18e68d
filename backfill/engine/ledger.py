"""The durable copy of each run's request in the warehouse, so `resume` works after Redis is lost."""

from __future__ import annotations

import datetime as dt
import json

from backfill.state import RunRecord
from backfill.warehouse import Warehouse, schema


def ledger_table(history_table: str) -> str:
    return f"{history_table.split('.')[0]}.backfill_runs"


def record_request(warehouse: Warehouse, record: RunRecord) -> None:
    table = schema(ledger_table(record.history_table), None, ("run_id", "STRING", True), ("pipeline", "STRING"),
                   ("request", "JSON"), ("alerts", "STRING"), ("strict", "BOOL"), ("created_at", "TIMESTAMP"))
    warehouse.create_table(table)
    warehouse.insert_rows(table.name, [{
        "run_id": record.run_id, "pipeline": record.pipeline, "request": json.dumps(record.request),
        "alerts": record.alerts, "strict": record.strict,
        "created_at": dt.datetime.fromtimestamp(record.created_at, dt.UTC)}])


def load_request(warehouse: Warehouse, history_table: str, run_id: str) -> RunRecord | None:
    table = ledger_table(history_table)
    if not warehouse.table_exists(table):
        return None
    rows = warehouse.query(f"SELECT * FROM {table} WHERE run_id = @run_id", {"run_id": run_id})
    if not rows:
        return None
    r = rows[0]
    req = r["request"] if isinstance(r["request"], dict) else json.loads(r["request"])
    return RunRecord(run_id=run_id, pipeline=r["pipeline"], request=req, alerts=r["alerts"] or "digest",
                     strict=bool(r["strict"]), history_table=history_table)
