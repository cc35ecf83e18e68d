"""Shared fixtures: real services on free ports, real DuckDB files, the real NBA data when present."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A real redis-server we can kill and restart (its data is lost: no persistence)."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (.ci/run installs it with apt-get)")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir)]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nba_data_dir() -> Path:
    """../shared/data/nba (or $BACKFILL_NBA_DATA); tests that need it skip cleanly when it is absent."""
    return require_nba_data()


def require_nba_data(*needed: str) -> Path:
    """The real data directory, or a clean skip when it (or one of the `needed` files) is absent."""
    from pipelines.nba.importer import default_data_dir

    path = default_data_dir()
    for rel in needed or ("player_logs",):
        if not (path / rel).exists():
            pytest.skip(f"real NBA data not found at {path} (set BACKFILL_NBA_DATA)")
    return path


@pytest.fixture(scope="session")
def real_nba_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every real season imported once per test process into a DuckDB file; copy it before writing."""
    from backfill.warehouse.duckdb import DuckDBWarehouse
    from pipelines.nba.importer import import_nba

    data = require_nba_data()
    # Built once per test session, not once per xdist process: the processes share the parent
    # of their base temp folders, and the first to take the lock imports (about 30 s).
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "real-nba"
    shared.mkdir(exist_ok=True)
    path = shared / "base.duckdb"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            path.unlink(missing_ok=True)
            with DuckDBWarehouse(path) as w:
                import_nba(w, data)
            (shared / "done").touch()
    return path


# The longest test files first (measured with --durations on a clean clone), then the other slow
# ones, then the rest: scripts/test turns off xdist's own order (most tests first), which handed
# the two-test files that take minutes out last and left three processes idle behind them.
LONGEST = ("test_equivalence", "test_bigquery_pipeline", "test_engine_recovery", "test_engine_failures",
           "test_doc_runner", "test_trust", "test_hints", "test_alerts", "test_validate", "test_demo",
           "test_report", "test_redis_readonly", "test_engine", "test_code_shape")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, int]:
        module = item.path.stem
        if module in LONGEST:
            return 0, LONGEST.index(module)
        return (1 if item.get_closest_marker("slow") else 2), 0

    items.sort(key=rank)  # stable: a file's tests keep their order



# Each file's summed test time (setup, call, teardown), the 15 longest printed at the end: the
# figures LONGEST above is ordered by, and what to fold first when the suite grows too long.
_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") or not _FILE_SECONDS:
        return
    longest = sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1])[:15]
    terminalreporter.write_sep("-", f"longest test files ({sum(_FILE_SECONDS.values()):.0f} s in all)")
    for path, seconds in longest:
        terminalreporter.write_line(f"{seconds:8.1f}s  {path}")
