"""`celery -A tests.support.emulated_app worker`: the real worker on the local BigQuery emulator.

The worker opens `BACKFILL_WAREHOUSE` (`bigquery://PROJECT/US?endpoint=http://127.0.0.1:PORT`)
with the production `BigQueryWarehouse.from_url`, and this module swaps in
`EmulatedBigQueryWarehouse` on the same client: the only difference is that one-date partition
writes go through the multi-statement transaction, because the emulator cannot replace a
partition through a `table$YYYYMMDD` decorator (tests/contract/bigquery_emulator.py says what
that leaves unexercised). Test code, so production workers have no such switch.
"""

from __future__ import annotations

from backfill.settings import Settings
from backfill.warehouse import Warehouse
from backfill.warehouse.bigquery import BigQueryWarehouse
from tests.contract.bigquery_emulator import EmulatedBigQueryWarehouse
from workers.factory import create_app


def emulated(warehouse: Warehouse) -> Warehouse:
    if not isinstance(warehouse, BigQueryWarehouse):
        raise RuntimeError(f"tests.support.emulated_app needs a bigquery:// warehouse, got {type(warehouse).__name__}")
    return EmulatedBigQueryWarehouse(warehouse.client, location=warehouse.location, labels=warehouse.labels,
                                     maximum_bytes_billed=warehouse.maximum_bytes_billed)


app = create_app(Settings(), emulated, worker=True)
