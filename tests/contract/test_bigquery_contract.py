"""The warehouse contract against real BigQuery, in a fresh dataset per test.

Runs only when `BACKFILL_BIGQUERY_PROJECT` names a project and Google credentials are found
(`GOOGLE_APPLICATION_CREDENTIALS` or application-default credentials); skipped otherwise.
`BACKFILL_BIGQUERY_LOCATION` picks the location (default US).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from .warehouse_contract import WarehouseContract

SKIP_REASON = "BigQuery contract suite skipped: set BACKFILL_BIGQUERY_PROJECT and GOOGLE_APPLICATION_CREDENTIALS"


def _configured() -> bool:
    if not os.environ.get("BACKFILL_BIGQUERY_PROJECT"):
        return False
    try:
        import google.auth

        google.auth.default()
    except Exception:  # no library, no credentials: either way the suite cannot run
        return False
    return True


if not _configured():
    pytest.skip(SKIP_REASON, allow_module_level=True)

from backfill.warehouse.bigquery import BigQueryWarehouse  # noqa: E402


class TestBigQueryContract(WarehouseContract):
    @pytest.fixture
    def warehouse(self) -> Iterator[BigQueryWarehouse]:
        project = os.environ["BACKFILL_BIGQUERY_PROJECT"]
        location = os.environ.get("BACKFILL_BIGQUERY_LOCATION", "US")
        wh = BigQueryWarehouse.from_url(f"bigquery://{project}/{location}", labels={"suite": "contract"})
        yield wh
        wh.close()

    @pytest.fixture
    def dataset(self, warehouse: BigQueryWarehouse) -> Iterator[str]:
        name = f"backfill_contract_{uuid.uuid4().hex[:10]}"
        yield name
        warehouse.client.delete_dataset(f"{warehouse.project}.{name}", delete_contents=True, not_found_ok=True)
