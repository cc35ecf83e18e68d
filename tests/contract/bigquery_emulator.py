"""A local BigQuery endpoint for the tests: the `local-bigquery` emulator in its own virtualenv.

`scripts/setup_bigquery_emulator` (run by `scripts/setup`) installs it into `.venv-bq/`. A test
that needs it fails, never skips, when it is missing: a skipped BigQuery suite is how the
warehouse went untested against anything that speaks BigQuery's API.

The real `google-cloud-bigquery` client talks to it over REST (`client_options.api_endpoint`,
anonymous credentials), so every request `BigQueryWarehouse` builds is parsed and executed by a
separate server, as in production.

What the emulator cannot do, and so what these tests do not exercise (kept in one place):
- Partition decorators. A query job whose destination is `table$YYYYMMDD` with WRITE_TRUNCATE
  creates a new table literally named `table$YYYYMMDD` instead of replacing one partition.
  `EmulatedBigQueryWarehouse` therefore sends one-date writes through the multi-statement
  transaction that several-date writes use in production; the decorator job itself is
  covered by `test_one_date_write_is_a_partition_decorator_job` (the request the server
  received) and offline by tests/unit/test_bigquery_translation.py, not by its effect.
- Bytes scanned: dry runs report 0 bytes, so `plan --cost` is exercised for its shape and
  its path through a real dry-run job, not for its numbers.
- `maximum_bytes_billed` is accepted and ignored, so the `bytesBilledLimitExceeded` failure is
  covered by the error classification only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backfill.warehouse.bigquery import BigQueryWarehouse

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("BACKFILL_BQ_EMULATOR_VENV", REPO / ".venv-bq"))
PROJECT = "test-project"
SETUP_HINT = "run scripts/setup_bigquery_emulator (scripts/setup and scripts/test run it)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Emulator:
    endpoint: str
    project: str
    log: Path

    def client(self) -> Any:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(project=self.project, location="US", credentials=AnonymousCredentials(),
                               client_options=ClientOptions(api_endpoint=self.endpoint))

    def warehouse(self, **kwargs: Any) -> EmulatedBigQueryWarehouse:
        return EmulatedBigQueryWarehouse(self.client(), location="US", **kwargs)


def start_emulator(workdir: Path) -> Iterator[Emulator]:
    """Start `local-bigquery serve` on free ports with a private HOME; stop it afterwards."""
    exe = VENV / "bin" / "local-bigquery"
    home = VENV / "home"
    if not exe.exists() or not (home / ".duckdb").is_dir():
        pytest.fail(f"BigQuery emulator not installed at {VENV}: {SETUP_HINT}", pytrace=False)
    port, grpc = _free_port(), _free_port()
    log = workdir / "local-bigquery.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "BIGQUERY_"))}
    env["HOME"] = str(home)  # its duckdb finds the extension files setup placed there, offline
    with log.open("wb") as out:
        proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--grpc-port", str(grpc), "--project", PROJECT,
                                 "--data-dir", str(workdir / "data")],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"BigQuery emulator exited with {proc.returncode}: {log.read_text()[-2000:]}",
                            pytrace=False)
            try:
                with urllib.request.urlopen(f"{endpoint}/bigquery/v2/projects/{PROJECT}/datasets", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"BigQuery emulator did not answer in 60 s: {log.read_text()[-2000:]}",
                                pytrace=False)
                time.sleep(0.2)
        yield Emulator(endpoint, PROJECT, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EmulatedBigQueryWarehouse(BigQueryWarehouse):
    """The production warehouse with `partition_decorators=False`: one-date writes go through the
    transaction, as `bigquery://...?endpoint=` does for a user's rehearsal on the emulator.

    Only because the emulator cannot replace a partition through a `table$YYYYMMDD` decorator
    (see the module docstring); every other call is `BigQueryWarehouse`'s own.
    """

    def __init__(self, client: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partition_decorators", False)
        super().__init__(client, **kwargs)


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    yield from start_emulator(tmp_path_factory.mktemp("bigquery-emulator"))
