"""The production warehouse: BigQuery through google-cloud-bigquery (the `[bigquery]` extra).

Everything that decides *what* is sent (query parameters, job labels, the atomic partition
write, error categories) is a plain function of its inputs, so it is tested offline; the
class only submits jobs and waits for them.

Transient errors (quota, rate limits, 5xx, timeouts) are classified and raised, never retried
here: the engine retries tasks with backoff and jitter and the throttle slows every worker
down on quota errors, which a retry loop hidden inside one call would defeat.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backfill.errors import (
    BadInput,
    CannotConnect,
    MissingExtra,
    QuotaExceeded,
    TransientWarehouseError,
    WarehouseError,
)
from backfill.outcome import ErrorCategory
from backfill.warehouse.base import Row, Warehouse
from backfill.warehouse.schema import Column, TableSchema, check_identifier, check_table_name

_PARAM = re.compile(r"(?<!@)@(\w+)")
_LABEL_BAD = re.compile(r"[^a-z0-9_-]")
_LABEL_MAX = 63
# Legacy names the API still returns in table schemas -> the Standard SQL names we declare.
_STANDARD_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "BIGNUMERIC": "NUMERIC"}
_QUOTA_REASONS = {"quotaExceeded", "rateLimitExceeded"}
# Raised when a job would scan more than its maximum_bytes_billed: never retried (it would
# fail the same way), alerted at once as a critical auth/config problem.
_BYTES_LIMIT_REASONS = {"bytesBilledLimitExceeded"}
_TRANSIENT_REASONS = {"backendError", "internalError"}
_AUTH_REASONS = {"accessDenied", "billingNotEnabled", "authError", "forbidden"}
_SCHEMA_WORDS = ("schema", "unrecognized name", "no such field", "not found: column", "does not have a field")


def _bigquery() -> Any:
    """google.cloud.bigquery, imported only when a BigQuery warehouse is actually used."""
    try:
        return importlib.import_module("google.cloud.bigquery")
    except ImportError as exc:
        raise MissingExtra("google-cloud-bigquery is not installed",
                           hint="pip install 'backfill[bigquery]'") from exc


# -- parameters --------------------------------------------------------------------------
def param_type(value: Any) -> str:
    """The BigQuery type of a Python parameter value (bool before int: bool is an int)."""
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        return "NUMERIC"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, (str, type(None))):
        return "STRING"
    raise WarehouseError(f"cannot pass a {type(value).__name__} as a query parameter",
                         category=ErrorCategory.processor_error)


def used_params(sql: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Only the parameters the SQL mentions (`@@error` style system variables excluded)."""
    if not params:
        return {}
    used = set(_PARAM.findall(sql))
    return {k: v for k, v in params.items() if k in used}


def query_parameters(params: Mapping[str, Any]) -> list[Any]:
    """Scalar and array query parameters with types inferred from the values.

    An empty list has no element to infer from and is sent as ARRAY<STRING>.
    """
    bq = _bigquery()
    out: list[Any] = []
    for name, value in params.items():
        if isinstance(value, (list, tuple, set, frozenset)):
            items = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
            first = next((v for v in items if v is not None), None)
            out.append(bq.ArrayQueryParameter(name, param_type(first), items))
        else:
            out.append(bq.ScalarQueryParameter(name, param_type(value), value))
    return out


def query_job_config(sql: str, params: Mapping[str, Any] | None, labels: Mapping[str, str] | None,
                     **config: Any) -> Any:
    """The QueryJobConfig for `sql`: its used parameters, sanitised labels, and extra settings."""
    return _bigquery().QueryJobConfig(query_parameters=query_parameters(used_params(sql, params)),
                                      labels=job_labels(labels), **config)


# -- labels ------------------------------------------------------------------------------
def sanitize_label(value: str) -> str:
    """Lowercase, only [a-z0-9_-], at most 63 characters: BigQuery's label rules."""
    return _LABEL_BAD.sub("_", str(value).lower())[:_LABEL_MAX]


def job_labels(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """Merge label mappings (later wins) into valid BigQuery job labels.

    Keys must also start with a letter, so `1st` becomes `l_1st`.
    """
    out: dict[str, str] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            k = sanitize_label(key)
            if not k[:1].isalpha():
                k = sanitize_label(f"l_{k}")
            out[k] = sanitize_label(value)
    return out


# -- errors ------------------------------------------------------------------------------
def _reasons(exc: BaseException) -> set[str]:
    found = {str(e.get("reason")) for e in getattr(exc, "errors", None) or [] if isinstance(e, dict)}
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):
        found.add(reason)
    return found


def classify_bigquery_error(exc: BaseException) -> WarehouseError:
    """Map a google-api-core / google-auth exception to the engine's error categories."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, WarehouseError):
        return exc
    text = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).splitlines()[0]
    reasons = _reasons(exc)
    if type(exc).__name__ in {"DefaultCredentialsError", "RefreshError"} or isinstance(exc, gexc.Unauthorized):
        return WarehouseError(f"BigQuery credentials: {text}", category=ErrorCategory.auth_config,
                              hint="set GOOGLE_APPLICATION_CREDENTIALS or run "
                                   "`gcloud auth application-default login`")
    if reasons & _BYTES_LIMIT_REASONS or "bytes billed" in text.lower():
        return WarehouseError(f"BigQuery query over maximum_bytes_billed: {text}", category=ErrorCategory.auth_config,
                              hint="check the processor's partition filter, or raise maximum_bytes_billed "
                                   "in the warehouse URL (bigquery://project/US?maximum_bytes_billed=N)")
    if reasons & _QUOTA_REASONS or isinstance(exc, gexc.TooManyRequests):
        return QuotaExceeded(f"BigQuery quota: {text}")
    if isinstance(exc, gexc.Forbidden):
        return WarehouseError(f"BigQuery access denied: {text}", category=ErrorCategory.auth_config,
                              hint="grant the service account BigQuery Job User and Data Editor")
    if (isinstance(exc, (gexc.ServerError, gexc.RetryError, TimeoutError, ConnectionError))
            or reasons & _TRANSIENT_REASONS or type(exc).__name__ in {"Timeout", "ConnectionError", "ReadTimeout"}):
        return TransientWarehouseError(f"BigQuery unavailable: {text}")
    if isinstance(exc, gexc.Conflict):
        return TransientWarehouseError(f"BigQuery concurrent update: {text}")
    if isinstance(exc, gexc.NotFound):
        return WarehouseError(text, category=ErrorCategory.schema_drift)
    if isinstance(exc, gexc.BadRequest) and any(w in text.lower() for w in _SCHEMA_WORDS):
        return WarehouseError(text, category=ErrorCategory.schema_drift)
    return WarehouseError(text, category=ErrorCategory.processor_error)


# -- the atomic partition write ----------------------------------------------------------
@dataclass(frozen=True)
class WriteJob:
    """One query job: its SQL, parameters, and (for a partition write) the destination."""

    sql: str
    params: dict[str, Any]
    destination: str | None = None
    write_disposition: str | None = None


def _select_columns(table: TableSchema) -> str:
    # Casts make the query's column types match the table's, whatever the processor computed.
    return table.cast_select_list()


def decorator_write_job(table: TableSchema, day: dt.date, select_sql: str,
                        params: Mapping[str, Any] | None, project: str) -> WriteJob:
    """One date: a query job writing to the partition decorator `table$YYYYMMDD` with
    WRITE_TRUNCATE, which swaps that one partition in one step."""
    dataset, name = _write_target(table)
    bound = used_params(select_sql, params)
    bound["backfill_date"] = day
    sql = (f"SELECT {_select_columns(table)} FROM (\n{_strip(select_sql)}\n) AS __src "
           f"WHERE {table.partition} = @backfill_date")
    return WriteJob(sql, bound, f"{project}.{dataset}.{name}${day:%Y%m%d}", "WRITE_TRUNCATE")


def transaction_write_job(table: TableSchema, dates: Sequence[dt.date], select_sql: str,
                          params: Mapping[str, Any] | None, project: str) -> WriteJob:
    """Any number of dates: one multi-statement transaction (DELETE, INSERT, COMMIT); if any
    statement fails BigQuery rolls the whole transaction back."""
    dataset, name = _write_target(table)
    if not dates:
        raise WarehouseError(f"no dates to replace in {table.name}", category=ErrorCategory.processor_error)
    part = table.partition
    bound = used_params(select_sql, params)
    bound["backfill_dates"] = sorted(set(dates))
    target = f"`{project}.{dataset}.{name}`"
    cols = ", ".join(table.column_names)
    sql = (
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM {target} WHERE {part} IN UNNEST(@backfill_dates);\n"
        f"INSERT INTO {target} ({cols})\nSELECT {_select_columns(table)} FROM (\n{_strip(select_sql)}\n) AS __src "
        f"WHERE {part} IN UNNEST(@backfill_dates);\n"
        "COMMIT TRANSACTION;\n"
        # The script's result is its last statement's: the rows now in the replaced partitions.
        f"SELECT COUNT(*) AS n FROM {target} WHERE {part} IN UNNEST(@backfill_dates);"
    )
    return WriteJob(sql, bound)


def _write_target(table: TableSchema) -> tuple[str, str]:
    if table.partition is None:
        raise WarehouseError(f"table {table.name} has no partition column", category=ErrorCategory.processor_error)
    return check_table_name(table.name)


def _strip(select_sql: str) -> str:
    return select_sql.strip().rstrip(";")


def replace_partitions_job(table: TableSchema, dates: Sequence[dt.date], select_sql: str,
                           params: Mapping[str, Any] | None, project: str) -> WriteJob:
    """The single job that atomically replaces `dates` of `table` with the rows of `select_sql`.

    One date: the partition decorator job (the cheapest atomic swap); several dates: the
    transaction. Rows outside `dates` are filtered out either way, so a task never writes a
    partition it does not own.
    """
    _write_target(table)
    if not dates:
        raise WarehouseError(f"no dates to replace in {table.name}", category=ErrorCategory.processor_error)
    date_list = sorted(set(dates))
    if len(date_list) == 1:
        return decorator_write_job(table, date_list[0], select_sql, params, project)
    return transaction_write_job(table, date_list, select_sql, params, project)


def merge_sql(target: str, staging: str, columns: Sequence[str], keys: Sequence[str]) -> str:
    """MERGE staged rows into `target` by `keys` (NULL keys match NULL keys, as in DuckDB)."""
    on = " AND ".join(f"(T.{k} = S.{k} OR (T.{k} IS NULL AND S.{k} IS NULL))" for k in keys)
    update = ", ".join(f"{c} = S.{c}" for c in columns if c not in keys) or f"{keys[0]} = S.{keys[0]}"
    cols = ", ".join(columns)
    values = ", ".join(f"S.{c}" for c in columns)
    return (f"MERGE `{target}` T USING `{staging}` S ON {on}\n"
            f"WHEN MATCHED THEN UPDATE SET {update}\n"
            f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})")


def json_row(row: Mapping[str, Any], types: Mapping[str, str]) -> dict[str, Any]:
    """A row as a load job's newline-delimited JSON wants it (ISO dates, UTC timestamps)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dt.datetime):
            value = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
        elif isinstance(value, dt.date):
            value = value.isoformat()
        elif isinstance(value, decimal.Decimal):
            value = str(value)
        elif types.get(key) == "JSON" and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


def parse_url(url: str) -> tuple[str, str]:
    """`bigquery://project[/location][?options]` -> (project, location); location defaults to US."""
    rest = url.removeprefix("bigquery://").partition("?")[0].strip("/")
    project, _, location = rest.partition("/")
    if not project or "/" in location:
        raise BadInput(f"invalid BigQuery URL {url!r}: expected bigquery://project[/location]")
    return project, location or "US"


# A runaway query (a lost partition filter, a cross join) fails instead of costing: 100 GiB is
# about $0.60 on demand and thousands of times what one NBA task scans.
DEFAULT_MAXIMUM_BYTES_BILLED = 100 * 2**30
_URL_OPTIONS = {"maximum_bytes_billed", "endpoint"}


def url_options(url: str) -> dict[str, str]:
    """The `?key=value` options of a BigQuery URL, checked: `maximum_bytes_billed` (bytes, 0 =
    no cap) and `endpoint` (a BigQuery-compatible REST endpoint such as a local emulator,
    reached with anonymous credentials)."""
    from urllib.parse import parse_qsl

    query = url.partition("?")[2]
    try:
        opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError as exc:
        raise BadInput(f"invalid BigQuery URL options {query!r}: expected key=value&...") from exc
    unknown = sorted(set(opts) - _URL_OPTIONS)
    if unknown:
        raise BadInput(f"unknown BigQuery URL option(s) {', '.join(unknown)} in {url!r}",
                       hint=f"known: {', '.join(sorted(_URL_OPTIONS))}")
    cap = opts.get("maximum_bytes_billed")
    if cap is not None and not cap.isdigit():
        raise BadInput(f"maximum_bytes_billed must be a whole number of bytes, got {cap!r}")
    return opts


class BigQueryWarehouse(Warehouse):
    """BigQuery, through a `google.cloud.bigquery.Client` passed in (tests and apps build it)."""

    kind = "bigquery"

    def __init__(self, client: Any, *, location: str = "US", labels: Mapping[str, str] | None = None,
                 maximum_bytes_billed: int | None = DEFAULT_MAXIMUM_BYTES_BILLED,
                 partition_decorators: bool = True) -> None:
        self._bq = _bigquery()
        self.client = client
        self.project: str = client.project
        self.location = location
        self.labels = job_labels({"tool": "backfill"}, labels)
        # Every query job carries the cap (None or 0: none), so a runaway query fails, not bills.
        self.maximum_bytes_billed = maximum_bytes_billed or None
        # One-date writes through a `table$YYYYMMDD` decorator job (BigQuery's cheapest partition
        # swap); False sends them through the multi-statement transaction, which an endpoint that
        # has no partition decorators (the local emulator) does support.
        self.partition_decorators = partition_decorators

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> BigQueryWarehouse:
        """Connect as `bigquery://project[/location][?maximum_bytes_billed=N&endpoint=URL]` says.

        Missing or unusable credentials are CannotConnect (exit 3): nothing can be done
        until they are fixed, and no command got as far as changing anything.
        """
        project, location = parse_url(url)
        opts = url_options(url)
        bq = _bigquery()
        if "maximum_bytes_billed" in opts:
            kwargs.setdefault("maximum_bytes_billed", int(opts["maximum_bytes_billed"]))
        if "endpoint" in opts:
            # A BigQuery-compatible endpoint (the local emulator for a rehearsal) has no partition
            # decorators: a decorator write there creates a table named `t$YYYYMMDD` and leaves the
            # partition empty, so every one-date write goes through the transaction instead.
            kwargs.setdefault("partition_decorators", False)
        try:
            if "endpoint" in opts:
                from google.api_core.client_options import ClientOptions
                from google.auth.credentials import AnonymousCredentials

                client = bq.Client(project=project, location=location, credentials=AnonymousCredentials(),
                                   client_options=ClientOptions(api_endpoint=opts["endpoint"]))
            else:
                client = bq.Client(project=project, location=location)
        except Exception as exc:  # google-auth raises DefaultCredentialsError here
            err = classify_bigquery_error(exc)
            if err.category == ErrorCategory.auth_config:
                raise CannotConnect(f"cannot connect to BigQuery project {project}: {err.message}",
                                    hint=err.hint) from exc
            raise err from exc
        return cls(client, location=location, **kwargs)

    def close(self) -> None:
        self.client.close()

    # -- jobs ------------------------------------------------------------------------------
    def _ref(self, name: str) -> str:
        dataset, table = check_table_name(name)
        return f"{self.project}.{dataset}.{table}"

    def _run(self, sql: str, params: Mapping[str, Any] | None, labels: Mapping[str, str] | None,
             **config: Any) -> Any:
        if self.maximum_bytes_billed and not config.get("dry_run"):
            config.setdefault("maximum_bytes_billed", self.maximum_bytes_billed)
        job_config = query_job_config(sql, params, job_labels(self.labels, labels), **config)
        try:
            job = self.client.query(sql, job_config=job_config, location=self.location)
            return job if job_config.dry_run else job.result()
        except Exception as exc:
            raise classify_bigquery_error(exc) from exc

    def query(self, sql: str, params: Mapping[str, Any] | None = None, *,
              labels: Mapping[str, str] | None = None) -> list[Row]:
        result = self._run(sql, params, labels)
        try:  # later pages are fetched while iterating, so errors can surface here too
            return [dict(row.items()) for row in result]
        except Exception as exc:
            raise classify_bigquery_error(exc) from exc

    def execute(self, sql: str, params: Mapping[str, Any] | None = None, *,
                labels: Mapping[str, str] | None = None) -> None:
        self._run(sql, params, labels)

    def dry_run_bytes(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Bytes the query would scan (billed), from a free dry-run job: for cost previews."""
        job = self._run(sql, params, None, dry_run=True, use_query_cache=False)
        return int(job.total_bytes_processed or 0)

    # -- tables ----------------------------------------------------------------------------
    def create_table(self, table: TableSchema) -> None:
        bq = self._bq
        dataset, _ = check_table_name(table.name)
        ds = bq.Dataset(f"{self.project}.{dataset}")
        ds.location = self.location
        # Columns are NULLABLE: a query job cannot write into REQUIRED columns, and required
        # columns are enforced by the checks and validation suite instead.
        bq_table = bq.Table(self._ref(table.name),
                            schema=[bq.SchemaField(c.name, c.type, mode="NULLABLE") for c in table.columns])
        if table.partition:
            bq_table.time_partitioning = bq.TimePartitioning(type_=bq.TimePartitioningType.DAY,
                                                             field=table.partition)
        if table.cluster:
            bq_table.clustering_fields = [check_identifier(c, "column name") for c in table.cluster]
        try:
            self.client.create_dataset(ds, exists_ok=True)
            self.client.create_table(bq_table, exists_ok=True)
        except Exception as exc:
            raise classify_bigquery_error(exc) from exc

    def _get_table(self, name: str) -> Any:
        ref = self._ref(name)  # outside the try: a bad identifier is BadInput, not a warehouse error
        try:
            return self.client.get_table(ref)
        except Exception as exc:
            raise classify_bigquery_error(exc) from exc

    def table_exists(self, name: str) -> bool:
        from google.api_core.exceptions import NotFound

        ref = self._ref(name)
        try:
            self.client.get_table(ref)
        except NotFound:
            return False
        except Exception as exc:
            raise classify_bigquery_error(exc) from exc
        return True

    def table_columns(self, name: str) -> dict[str, str]:
        return {f.name: _STANDARD_TYPES.get(f.field_type, f.field_type) for f in self._get_table(name).schema}

    def _add_column(self, table: str, column: Column) -> None:
        """A schema update through the tables API: metadata only, no query job, no bytes billed."""
        check_identifier(column.name, "column name")
        bq_table = self._get_table(table)
        if any(f.name == column.name for f in bq_table.schema):
            return
        bq_table.schema = [*bq_table.schema, self._bq.SchemaField(column.name, column.type, mode="NULLABLE")]
        try:
            self.client.update_table(bq_table, ["schema"])
        except Exception as exc:
            raise classify_bigquery_error(exc) from exc

    # -- writes ----------------------------------------------------------------------------
    def _load(self, bq_table: Any, rows: Sequence[Mapping[str, Any]], disposition: str) -> None:
        types = {f.name: _STANDARD_TYPES.get(f.field_type, f.field_type) for f in bq_table.schema}
        missing = sorted({k for r in rows for k in r} - set(types))
        if missing:
            raise WarehouseError(f"table {bq_table.table_id} has no column(s) {', '.join(missing)}",
                                 category=ErrorCategory.schema_drift)
        config = self._bq.LoadJobConfig(schema=bq_table.schema, write_disposition=disposition,
                                        labels=self.labels)
        try:
            self.client.load_table_from_json([json_row(r, types) for r in rows], bq_table,
                                             job_config=config, location=self.location).result()
        except Exception as exc:
            raise classify_bigquery_error(exc) from exc

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """One load job per call (never streaming inserts, never a job per row)."""
        check_table_name(table)
        if not rows:
            return 0
        for key in rows[0]:
            check_identifier(key, "column name")
        self._load(self._get_table(table), rows, "WRITE_APPEND")
        return len(rows)

    def replace_partitions(self, table: TableSchema, dates: Sequence[dt.date], select_sql: str,
                           params: Mapping[str, Any] | None = None, *,
                           labels: Mapping[str, str] | None = None) -> int:
        job = (replace_partitions_job(table, dates, select_sql, params, self.project) if self.partition_decorators
               else transaction_write_job(table, dates, select_sql, params, self.project))
        self.create_table(table)
        if job.destination is None:
            rows = list(self._run(job.sql, job.params, labels))
            return int(rows[0]["n"]) if rows else 0
        result = self._run(job.sql, job.params, labels, destination=job.destination,
                           write_disposition=job.write_disposition)
        return int(result.total_rows or 0)

    def _merge_unique(self, table: TableSchema, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> int:
        """Load the rows into a short-lived staging table (one load job), then one MERGE."""
        target = self._get_table(table.name)
        dataset, name = check_table_name(table.name)
        staging_id = f"{self.project}.{dataset}._backfill_stage_{name}_{uuid.uuid4().hex[:12]}"
        staging = self._bq.Table(staging_id, schema=target.schema)
        staging.expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        try:
            staging = self.client.create_table(staging)
        except Exception as exc:
            raise classify_bigquery_error(exc) from exc
        try:
            self._load(staging, list(rows), "WRITE_TRUNCATE")
            self._run(merge_sql(self._ref(table.name), staging_id, table.column_names, keys), None, None)
        finally:
            self.client.delete_table(staging_id, not_found_ok=True)
        return len(rows)
