"""What the BigQuery warehouse would send, checked offline: parameters, labels, the atomic
partition write, and how google-api-core errors map to the engine's categories."""

from __future__ import annotations

import datetime as dt
import decimal
import subprocess
import sys

import pytest
import sqlglot
from google.api_core import exceptions as gexc
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import bigquery
from sqlglot import exp

from backfill.errors import BadInput, MissingExtra, QuotaExceeded, TransientWarehouseError, WarehouseError
from backfill.warehouse import schema
from backfill.warehouse.bigquery import (
    classify_bigquery_error,
    job_labels,
    json_row,
    merge_sql,
    param_type,
    parse_url,
    query_job_config,
    query_parameters,
    replace_partitions_job,
    sanitize_label,
    used_params,
)

D1, D2, D3 = dt.date(2024, 1, 10), dt.date(2024, 1, 11), dt.date(2024, 1, 12)
TABLE = schema("nba_analytics.player_game_summary", "game_date", ("game_date", "DATE", True),
               ("player_lookup", "STRING", True), ("points", "INT64"), ("extra", "JSON"), cluster=("player_lookup",))
SELECT = "SELECT * FROM nba_raw.box_scores WHERE game_date BETWEEN @start_date AND @end_date;"
PARAMS = {"start_date": D1, "end_date": D3, "unused": 1}


# -- parameters --------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (D1, "DATE"), (dt.datetime(2024, 1, 10, 12, tzinfo=dt.UTC), "TIMESTAMP"), (3, "INT64"), (2.5, "FLOAT64"),
    (True, "BOOL"), (False, "BOOL"), ("Nikola Jokić", "STRING"), (decimal.Decimal("1.5"), "NUMERIC"),
    (None, "STRING"),
])
def test_param_types_are_inferred_from_python_values(value: object, expected: str) -> None:
    assert param_type(value) == expected


def test_unsupported_param_value_is_a_processor_error() -> None:
    with pytest.raises(WarehouseError) as err:
        param_type(object())
    assert err.value.category == "processor_error"


def test_scalar_and_array_parameters_carry_their_types() -> None:
    built = {p.name: p for p in query_parameters({"day": D1, "n": 5, "names": ["A", "B"], "days": [D1, D2],
                                                  "none": []})}
    assert isinstance(built["day"], bigquery.ScalarQueryParameter)
    assert (built["day"].type_, built["day"].value) == ("DATE", D1)
    assert built["n"].type_ == "INT64"
    assert isinstance(built["names"], bigquery.ArrayQueryParameter)
    assert (built["names"].array_type, built["names"].values) == ("STRING", ["A", "B"])
    assert built["days"].array_type == "DATE"
    assert built["none"].array_type == "STRING"
    assert built["days"].to_api_repr()["parameterValue"]["arrayValues"] == [
        {"value": "2024-01-10"}, {"value": "2024-01-11"}]


def test_only_parameters_the_sql_uses_are_sent() -> None:
    sql = "SELECT @@error.message, x FROM t WHERE d = @start_date"
    assert used_params(sql, PARAMS) == {"start_date": D1}
    assert used_params(sql, None) == {}


# -- labels ------------------------------------------------------------------------------
def test_labels_follow_bigquery_label_rules() -> None:
    assert sanitize_label("Run 2024-01-10T12:00/ABC.def") == "run_2024-01-10t12_00_abc_def"
    assert sanitize_label("x" * 100) == "x" * 63
    assert sanitize_label("Jokić") == "joki_"


def test_job_labels_merge_layers_and_fix_keys() -> None:
    labels = job_labels({"tool": "backfill", "run_id": "old"}, {"Run_ID": "R-42", "1st": "A"}, None)
    assert labels == {"tool": "backfill", "run_id": "r-42", "l_1st": "a"}
    assert all(len(k) <= 63 and len(v) <= 63 for k, v in labels.items())


def test_query_job_config_binds_labels_params_and_destination() -> None:
    config = query_job_config(SELECT, PARAMS, {"task_id": "Player_Game_Summary:2024-01-10"},
                              destination="proj.nba_analytics.player_game_summary$20240110",
                              write_disposition="WRITE_TRUNCATE")
    assert config.labels == {"task_id": "player_game_summary_2024-01-10"}
    assert [p.name for p in config.query_parameters] == ["start_date", "end_date"]
    assert config.destination.table_id == "player_game_summary$20240110"
    assert config.write_disposition == "WRITE_TRUNCATE"


# -- the atomic partition write ----------------------------------------------------------
def test_one_date_is_one_truncating_write_to_the_partition_decorator() -> None:
    job = replace_partitions_job(TABLE, [D1], SELECT, PARAMS, "proj")
    assert job.destination == "proj.nba_analytics.player_game_summary$20240110"
    assert job.write_disposition == "WRITE_TRUNCATE"
    assert job.params == {"start_date": D1, "end_date": D3, "backfill_date": D1}
    assert "DELETE" not in job.sql.upper()
    assert job.sql.rstrip().endswith("WHERE game_date = @backfill_date")
    (statement,) = sqlglot.parse(job.sql, read="bigquery")
    assert isinstance(statement, exp.Select)
    # Casts pin the column types to the table's; JSON passes through untouched.
    assert "CAST(points AS INT64) AS points" in job.sql and "CAST(extra" not in job.sql


def test_several_dates_are_one_multi_statement_transaction() -> None:
    job = replace_partitions_job(TABLE, [D3, D1, D3], SELECT, PARAMS, "proj")
    assert job.destination is None and job.write_disposition is None
    assert job.params["backfill_dates"] == [D1, D3]
    statements = sqlglot.parse(job.sql, read="bigquery")
    assert [type(s) for s in statements] == [exp.Transaction, exp.Delete, exp.Insert, exp.Commit, exp.Select]
    assert job.sql.startswith("BEGIN TRANSACTION;")
    assert job.sql.count("COMMIT TRANSACTION;") == 1
    target = "`proj.nba_analytics.player_game_summary`"
    assert f"DELETE FROM {target} WHERE game_date IN UNNEST(@backfill_dates);" in job.sql
    assert "WHERE game_date IN UNNEST(@backfill_dates);\nCOMMIT" in job.sql  # rows outside are discarded


def test_replace_needs_a_partitioned_table_and_dates() -> None:
    unpartitioned = schema("nba_reference.registry", None, ("name", "STRING"))
    with pytest.raises(WarehouseError):
        replace_partitions_job(unpartitioned, [D1], SELECT, None, "proj")
    with pytest.raises(WarehouseError):
        replace_partitions_job(TABLE, [], SELECT, None, "proj")


def test_merge_matches_keys_null_safely_and_upserts() -> None:
    sql = merge_sql("p.ds.t", "p.ds._stage", ["k", "d", "v"], ["k", "d"])
    statement = sqlglot.parse_one(sql, read="bigquery")
    assert isinstance(statement, exp.Merge)
    assert "(T.k = S.k OR (T.k IS NULL AND S.k IS NULL))" in sql
    assert "UPDATE SET v = S.v" in sql
    assert "INSERT (k, d, v) VALUES (S.k, S.d, S.v)" in sql


def test_load_rows_are_json_ready() -> None:
    naive = dt.datetime(2024, 1, 10, 12, 30)
    out = json_row({"d": D1, "ts": naive, "n": decimal.Decimal("1.25"), "w": '{"a": 1}', "s": '{"a": 1}'},
                   {"w": "JSON", "s": "STRING"})
    assert out == {"d": "2024-01-10", "ts": "2024-01-10T12:30:00+00:00", "n": "1.25", "w": {"a": 1},
                   "s": '{"a": 1}'}


# -- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("exc", [
    gexc.Forbidden("Quota exceeded: too many table update operations", errors=[{"reason": "quotaExceeded"}]),
    gexc.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}]),
    gexc.TooManyRequests("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}]),
    gexc.BadRequest("Quota exceeded", errors=[{"reason": "quotaExceeded"}]),
])
def test_quota_and_rate_limits_are_quota_errors(exc: Exception) -> None:
    err = classify_bigquery_error(exc)
    assert isinstance(err, QuotaExceeded) and err.category == "quota"


@pytest.mark.parametrize("exc", [
    gexc.InternalServerError("backend error"), gexc.ServiceUnavailable("try again"), gexc.BadGateway("bad gateway"),
    gexc.GatewayTimeout("deadline"), gexc.BadRequest("x", errors=[{"reason": "backendError"}]),
    gexc.Conflict("Transaction is aborted due to concurrent update"), TimeoutError("job timed out"),
    gexc.RetryError("retries exhausted", cause=None),
])
def test_server_errors_and_timeouts_are_transient(exc: Exception) -> None:
    err = classify_bigquery_error(exc)
    assert isinstance(err, TransientWarehouseError) and not isinstance(err, QuotaExceeded)
    assert err.category == "transient"


@pytest.mark.parametrize("exc", [
    gexc.NotFound("Not found: Table proj:nba_raw.box_scores was not found in location US"),
    gexc.BadRequest("Unrecognized name: plus_minus at [3:5]"),
    gexc.BadRequest("Provided Schema does not match Table proj:ds.t. Field points has changed type"),
    gexc.BadRequest("Query column 3 has type STRING which cannot be inserted into column points, "
                    "which has type INT64; invalid schema"),
])
def test_missing_tables_and_columns_are_schema_drift(exc: Exception) -> None:
    assert classify_bigquery_error(exc).category == "schema_drift"


@pytest.mark.parametrize("exc", [
    gexc.Unauthorized("Request had invalid authentication credentials"),
    gexc.Forbidden("Access Denied: Project proj", errors=[{"reason": "accessDenied"}]),
    DefaultCredentialsError("Your default credentials were not found"),
])
def test_credential_and_permission_errors_are_auth_config(exc: Exception) -> None:
    err = classify_bigquery_error(exc)
    assert err.category == "auth_config" and not isinstance(err, TransientWarehouseError)
    assert err.hint


@pytest.mark.parametrize("exc", [
    gexc.BadRequest("Division by zero: 1 / 0", errors=[{"reason": "invalidQuery"}]),
    gexc.BadRequest("Syntax error: Expected end of input but got identifier field at [1:8]"),
    gexc.BadRequest("Bad int64 value: oops"),
])
def test_other_bad_requests_are_processor_errors(exc: Exception) -> None:
    assert classify_bigquery_error(exc).category == "processor_error"


def test_classified_errors_keep_the_first_line_of_the_message() -> None:
    err = classify_bigquery_error(gexc.BadRequest("Division by zero: 1 / 0\n\nLocation: US\nJob ID: abc"))
    assert err.message.endswith("Division by zero: 1 / 0")


# -- configuration -----------------------------------------------------------------------
def test_url_names_project_and_location() -> None:
    assert parse_url("bigquery://my-proj") == ("my-proj", "US")
    assert parse_url("bigquery://my-proj/europe-west1") == ("my-proj", "europe-west1")
    with pytest.raises(BadInput):
        parse_url("bigquery://")


def test_missing_library_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from backfill.warehouse import open_warehouse

    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", None)
    with pytest.raises(MissingExtra) as err:
        open_warehouse("bigquery://my-proj/US")
    assert err.value.hint == "pip install 'backfill[bigquery]'"
    assert err.value.exit_code == 2


def test_importing_the_module_does_not_import_google_cloud_bigquery() -> None:
    code = ("import sys; import backfill.warehouse.bigquery, backfill.warehouse; "
            "assert 'google.cloud.bigquery' not in sys.modules, 'imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True)
