"""The real services a benchmark runs against: a redis-server and a Celery worker, started and
always stopped by context managers, so a failed measurement leaves no process behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A throwaway redis-server on a free port (no persistence); yields its URL."""
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def backfill_env(redis_url: str, warehouse: Path, home: Path, **settings: str) -> dict[str, str]:
    """The environment of a CLI or worker process: BACKFILL_* settings, the repo importable."""
    env = dict(os.environ, BACKFILL_REDIS_URL=redis_url, BACKFILL_WAREHOUSE=f"duckdb:///{warehouse}",
               BACKFILL_HOME=str(home), PYTHONPATH=str(REPO))
    env.update({f"BACKFILL_{k.upper()}": v for k, v in settings.items()})
    return env


@contextmanager
def celery_worker(env: Mapping[str, str], home: Path, name: str, threads: int) -> Iterator[subprocess.Popen[bytes]]:
    """One `celery worker --pool threads -c N` on the env's warehouse, waited for until ready."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "threads",
                                   "-c", str(threads), "--loglevel", "INFO", "-n", f"{name}@%h",
                                   "--without-mingle", "--without-gossip"], cwd=REPO, env=dict(env), stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while " ready." not in log_path.read_text(errors="replace"):
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(log_path.read_text(errors="replace")[-2000:])
                time.sleep(0.1)
            yield worker
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
