"""`celery -A tests.support.faulty_app worker`: the real worker, its warehouse wrapped in faults.

Read from the environment here, in test code, so production workers have no such switch:
- BACKFILL_TEST_QUOTA_RATE: fraction (0-1) of warehouse calls that raise an injected quota error;
- BACKFILL_TEST_SLOW_TABLES: `table=seconds[,table=seconds]`, each partition replace of that
  table sleeps first (a processor that runs longer than the lease TTL).
"""

from __future__ import annotations

import os
import sys

from backfill.localredis import celery_settings
from backfill.settings import Settings
from backfill.warehouse import Warehouse
from tests.support.faults import FaultyWarehouse
from workers.factory import create_app

QUOTA_RATE = float(os.environ.get("BACKFILL_TEST_QUOTA_RATE", "0") or 0)
SLOW_TABLES = {name: float(sec) for name, _, sec in
               (item.partition("=") for item in os.environ.get("BACKFILL_TEST_SLOW_TABLES", "").split(",") if item)}


def wrap(warehouse: Warehouse) -> Warehouse:
    return FaultyWarehouse(warehouse, quota_rate=QUOTA_RATE, slow_tables=SLOW_TABLES)


# The same Redis as `celery -A workers.app`: BACKFILL_REDIS_URL, else the CLI's local one under home.
settings, note = celery_settings(Settings())
if note:
    print(note, file=sys.stderr)
app = create_app(settings, wrap, worker=True)
