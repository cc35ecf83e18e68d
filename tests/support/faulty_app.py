"""`celery -A tests.support.faulty_app worker`: the real worker, its warehouse wrapped in faults.

Read from the environment here, in test code, so production workers have no such switch:
- BACKFILL_TEST_QUOTA_RATE: fraction (0-1) of warehouse calls that raise an injected quota error;
- BACKFILL_TEST_QUOTA_SEED: seeds that draw (each warehouse the worker opens draws the same
  sequence), for a test that must see at least one error early: unseeded, a 10% rate hit none of
  a short run's calls once in CI;
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
QUOTA_SEED = int(os.environ["BACKFILL_TEST_QUOTA_SEED"]) if os.environ.get("BACKFILL_TEST_QUOTA_SEED") else None
SLOW_TABLES = {name: float(sec) for name, _, sec in
               (item.partition("=") for item in os.environ.get("BACKFILL_TEST_SLOW_TABLES", "").split(",") if item)}


def wrap(warehouse: Warehouse) -> Warehouse:
    return FaultyWarehouse(warehouse, quota_rate=QUOTA_RATE, seed=QUOTA_SEED, slow_tables=SLOW_TABLES)


# The same Redis as `celery -A workers.app`: BACKFILL_REDIS_URL, else the CLI's local one under home.
settings, note = celery_settings(Settings())
if note:
    print(note, file=sys.stderr)
app = create_app(settings, wrap, worker=True)
