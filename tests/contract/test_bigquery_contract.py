"""The warehouse contract against BigQuery's API: always the local emulator, and real BigQuery
when a project is configured.

The emulator (`tests/contract/bigquery_emulator.py`) runs on every test run and fails loudly
when `scripts/setup_bigquery_emulator` did not install it. Real BigQuery runs, in a fresh
dataset per test, only when `BACKFILL_BIGQUERY_PROJECT` names a project (credentials from
`GOOGLE_APPLICATION_CREDENTIALS` or application-default); without it that class is not
defined at all rather than skipped, so a skip never hides on a machine that should run it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backfill.errors import BadInput, CannotConnect, WarehouseError
from backfill.warehouse import open_warehouse
from backfill.warehouse.bigquery import BigQueryWarehouse, classify_bigquery_error

from .bigquery_emulator import EmulatedBigQueryWarehouse, Emulator, bigquery_emulator  # noqa: F401
from .warehouse_contract import D1, D2, SELECT_SOURCE, WarehouseContract, events, row


def _fresh_dataset(warehouse: BigQueryWarehouse) -> Iterator[str]:
    name = f"backfill_contract_{uuid.uuid4().hex[:10]}"
    yield name
    warehouse.client.delete_dataset(f"{warehouse.project}.{name}", delete_contents=True, not_found_ok=True)


class TestBigQueryEmulatorContract(WarehouseContract):
    @pytest.fixture
    def warehouse(self, bigquery_emulator: Emulator) -> Iterator[EmulatedBigQueryWarehouse]:  # noqa: F811
        wh = bigquery_emulator.warehouse(labels={"suite": "contract"})
        yield wh
        wh.close()

    @pytest.fixture
    def dataset(self, warehouse: BigQueryWarehouse) -> Iterator[str]:
        yield from _fresh_dataset(warehouse)


if os.environ.get("BACKFILL_BIGQUERY_PROJECT"):

    class TestRealBigQueryContract(WarehouseContract):
        @pytest.fixture
        def warehouse(self) -> Iterator[BigQueryWarehouse]:
            project = os.environ["BACKFILL_BIGQUERY_PROJECT"]
            location = os.environ.get("BACKFILL_BIGQUERY_LOCATION", "US")
            wh = BigQueryWarehouse.from_url(f"bigquery://{project}/{location}", labels={"suite": "contract"})
            yield wh
            wh.close()

        @pytest.fixture
        def dataset(self, warehouse: BigQueryWarehouse) -> Iterator[str]:
            yield from _fresh_dataset(warehouse)


# -- what only BigQuery's API shows ---------------------------------------------------------
@pytest.fixture
def emulated(bigquery_emulator: Emulator) -> Iterator[EmulatedBigQueryWarehouse]:  # noqa: F811
    wh = bigquery_emulator.warehouse(labels={"suite": "contract"})
    yield wh
    wh.close()


@pytest.fixture
def dataset(emulated: EmulatedBigQueryWarehouse) -> Iterator[str]:
    yield from _fresh_dataset(emulated)


def test_tables_are_created_day_partitioned_and_clustered(emulated: EmulatedBigQueryWarehouse,
                                                         dataset: str) -> None:
    table = events(dataset)
    emulated.create_table(table)
    got = emulated.client.get_table(f"{emulated.project}.{table.name}")
    assert got.time_partitioning is not None and got.time_partitioning.type_ == "DAY"
    assert got.time_partitioning.field == "game_date"
    assert got.clustering_fields == ["player"]
    assert {f.mode for f in got.schema} == {"NULLABLE"}


def test_every_query_job_carries_labels_and_maximum_bytes_billed(emulated: EmulatedBigQueryWarehouse,
                                                                 dataset: str) -> None:
    table = events(dataset)
    emulated.create_table(table)
    emulated.query(f"SELECT COUNT(*) AS n FROM {table.name} WHERE game_date = @day", {"day": D1},
                   labels={"run_id": "Run-7", "task_id": "events:2024-01-10"})
    job = next(j for j in emulated.client.list_jobs(max_results=50) if getattr(j, "query", "")
               and "COUNT(*) AS n" in j.query)
    assert job.labels == {"tool": "backfill", "suite": "contract", "run_id": "run-7",
                          "task_id": "events_2024-01-10"}
    assert int(job.maximum_bytes_billed) == emulated.maximum_bytes_billed
    # The date parameter reached the server typed, not as a string spliced into the SQL.
    assert [(p.name, p.type_, p.value) for p in job.query_parameters] == [("day", "DATE", D1)]


def test_one_date_write_is_a_partition_decorator_job(emulated: EmulatedBigQueryWarehouse, dataset: str) -> None:
    """What the emulator cannot execute, checked as the request it received.

    Production writes one date as a query job into `table$YYYYMMDD` with WRITE_TRUNCATE. The
    emulator accepts that job but writes a new table literally named `events$20240111` rather
    than replacing the partition, so the *effect* is not tested here (real BigQuery does it);
    the job's destination and disposition as the server recorded them are.
    """
    src = events(dataset, "source")
    emulated.create_table(src)
    emulated.insert_rows(src.name, [row(D2, "A", 1)])
    target = events(dataset)
    production = BigQueryWarehouse(emulated.client, location="US")  # partition decorators on, as on BigQuery
    production.replace_partitions(target, [D2], SELECT_SOURCE.format(source=src.name),
                                  {"start_date": D2, "end_date": D2})
    job = next(j for j in emulated.client.list_jobs(max_results=50)
               if getattr(j, "destination", None) is not None and "$" in j.destination.table_id)
    assert job.destination.table_id == "events$20240111"
    assert job.destination.dataset_id == dataset
    assert job.write_disposition == "WRITE_TRUNCATE"
    assert "@backfill_date" in job.query


def test_bad_sql_and_missing_tables_get_their_categories(emulated: EmulatedBigQueryWarehouse, dataset: str) -> None:
    with pytest.raises(WarehouseError) as missing:
        emulated.query(f"SELECT * FROM {dataset}.no_such_table")
    assert missing.value.category == "schema_drift"
    with pytest.raises(WarehouseError) as bad:
        emulated.query("SELEC 1")
    assert bad.value.category == "processor_error"


def test_bytes_billed_limit_is_critical_not_retried() -> None:
    """The emulator ignores maximum_bytes_billed, so the server's refusal is built here."""
    from google.api_core.exceptions import BadRequest

    exc = BadRequest("Query exceeded limit for bytes billed: 1000. 10485760 or higher required.",
                     errors=[{"reason": "bytesBilledLimitExceeded"}])
    err = classify_bigquery_error(exc)
    assert err.category == "auth_config" and "maximum_bytes_billed" in (err.hint or "")


def test_url_options_reach_the_warehouse(bigquery_emulator: Emulator) -> None:  # noqa: F811
    wh = open_warehouse(f"bigquery://{bigquery_emulator.project}/US?maximum_bytes_billed=12345"
                        f"&endpoint={bigquery_emulator.endpoint}")
    assert isinstance(wh, BigQueryWarehouse) and wh.maximum_bytes_billed == 12345
    assert wh.query("SELECT @x + 1 AS y", {"x": 1}) == [{"y": 2}]
    wh.close()
    with pytest.raises(BadInput):
        open_warehouse("bigquery://p/US?maximum_bytes_billed=lots")
    with pytest.raises(BadInput):
        open_warehouse("bigquery://p/US?endpont=http://x")


def test_no_credentials_is_cannot_connect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Exit 3, as documented: no command got as far as changing anything."""
    for var in [v for v in os.environ if v.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))  # no application-default credentials file
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # and no metadata server to ask
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    with pytest.raises(CannotConnect) as err:
        open_warehouse("bigquery://some-project/US")
    assert err.value.exit_code == 3


def test_pipeline_tables_are_clustered_as_the_spec_says(emulated: EmulatedBigQueryWarehouse, dataset: str) -> None:
    from dataclasses import replace

    from backfill.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "pipelines" / "nba")
    proc = spec.processors["player_shot_zone_analysis"]
    assert proc.cluster == ("team", "player_id")
    table = replace(proc.table, name=f"{dataset}.player_shot_zone_analysis")
    emulated.create_table(table)
    got = emulated.client.get_table(f"{emulated.project}.{table.name}")
    assert got.clustering_fields == ["team", "player_id"] and got.time_partitioning.field == "game_date"


def test_a_cluster_column_the_table_lacks_is_refused(tmp_path: Path) -> None:
    import shutil

    from backfill.errors import SpecError
    from backfill.spec import load_spec

    pipeline = tmp_path / "nba"
    shutil.copytree(Path(__file__).resolve().parents[2] / "pipelines" / "nba", pipeline)
    yaml = pipeline / "pipeline.yaml"
    yaml.write_text(yaml.read_text().replace("cluster: [team]", "cluster: [teem]", 1))
    with pytest.raises(SpecError, match="teem"):
        load_spec(pipeline)
