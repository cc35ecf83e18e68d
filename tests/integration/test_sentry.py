"""Sentry events: real HTTP to a local envelope server, no mocks. Secrets never leave the process."""

from __future__ import annotations

import gzip
import json
import shutil
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from backfill.alerts import sentry as alerts_sentry
from backfill.settings import Settings
from backfill.state import RedisStateStore, RunStatus, TaskStatus
from tests.conftest import RedisServer
from tests.integration.engine_harness import OPENING, REPO, Worker, break_on_dates, league_copy, run_cli, wait_run

sentry_sdk = pytest.importorskip("sentry_sdk")

UNIT_SECRET = "PLANTED_SENTRY_SECRET_7f3a"
RUN_SECRET = "PLANTED_SENTRY_RUN_SECRET_91c2"


class EnvelopeServer:
    """Accepts `POST /api/<project>/envelope/` (gzip or not) and keeps the decompressed bodies."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "deflate":
                    raw = zlib.decompress(raw)
                elif encoding == "br":
                    import brotli  # type: ignore[import-not-found]

                    raw = brotli.decompress(raw)
                with lock:
                    outer.bodies.append(raw)
                    outer.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/1"

    def events(self) -> list[dict[str, Any]]:
        """The `event` items of every envelope received so far."""
        out: list[dict[str, Any]] = []
        for body in list(self.bodies):
            lines = body.split(b"\n")
            for i, line in enumerate(lines[1:-1], start=1):
                try:
                    header = json.loads(line)
                except ValueError:
                    continue
                if isinstance(header, dict) and header.get("type") == "event":
                    out.append(json.loads(lines[i + 1]))
        return out

    def wait_events(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events()) >= count:
                return self.events()
            time.sleep(0.1)
        return self.events()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def envelope_server() -> Iterator[EnvelopeServer]:
    server = EnvelopeServer()
    yield server
    server.close()


@pytest.fixture
def sentry_reset() -> Iterator[None]:
    yield
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)
    alerts_sentry._active = False


def test_no_dsn_no_sentry() -> None:
    assert alerts_sentry.init_sentry(Settings(sentry_dsn="")) is False
    alerts_sentry.report_task_failure({"processor": "p", "error_category": "x"}, "run")  # a no-op, no error


def test_exception_event_is_scrubbed_of_secrets(envelope_server: EnvelopeServer, sentry_reset: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_API_TOKEN", "tok-" + UNIT_SECRET[::-1])
    url = f"redis://:{UNIT_SECRET}@host:6379/0"
    settings = Settings(sentry_dsn=envelope_server.dsn, redis_url=url)
    assert alerts_sentry.init_sentry(settings) is True
    try:
        raise RuntimeError(f"cannot connect to {url}; password {UNIT_SECRET}; token tok-{UNIT_SECRET[::-1]}")
    except RuntimeError as exc:
        sentry_sdk.set_extra("conn", {"url": url, "nested": [UNIT_SECRET]})
        sentry_sdk.capture_exception(exc)
    alerts_sentry.report_task_failure({"task_id": "p@2023-11-01", "processor": "p", "error_category": "processor_error",
                                       "error_message": f"boom {url}\nsecond line"}, "RUN1")
    sentry_sdk.flush(timeout=5)
    events = envelope_server.wait_events(2)
    assert len(events) == 2, envelope_server.bodies
    assert all(p.startswith("/api/1/envelope/") for p in envelope_server.paths)
    raw = b"\n".join(envelope_server.bodies)
    assert UNIT_SECRET.encode() not in raw
    assert UNIT_SECRET[::-1].encode() not in raw
    assert b"***" in raw
    exc_event = next(e for e in events if "exception" in e)
    value = exc_event["exception"]["values"][-1]["value"]
    assert "redis://:***@host:6379/0" in value and "password ***" in value
    failure = next(e for e in events if "exception" not in e)
    assert failure["fingerprint"] == ["p", "processor_error"]
    assert failure["message"] == "p: processor_error: boom redis://:***@host:6379/0"
    assert failure["tags"]["run_id"] == "RUN1" and failure["tags"]["task_id"] == "p@2023-11-01"
    assert failure["level"] == "error"


@pytest.mark.integration
@pytest.mark.slow
def test_worker_failures_group_by_processor_and_category(tmp_path: Path, league_template: Path,
                                                         envelope_server: EnvelopeServer) -> None:
    redis = RedisServer(tmp_path, password=RUN_SECRET)
    redis.start()
    worker: Worker | None = None
    try:
        pipeline = tmp_path / "nba"
        shutil.copytree(REPO / "pipelines" / "nba", pipeline)
        days = ["2023-10-27", "2023-10-29"]
        # The error message carries the planted secret, so the scrubber really has work to do.
        break_on_dates(pipeline / "sql" / "team_defense_game_summary.sql", days,
                       f"injected failure (password {RUN_SECRET})")
        wh = league_copy(league_template, tmp_path / "wh.duckdb")
        home = tmp_path / "home"
        worker = Worker(redis.url, wh, home, BACKFILL_SENTRY_DSN=envelope_server.dsn).start()
        # immediate: one event per final failure (digest mode would send one per group, at the season's end)
        # From the season opener, so every window is complete and only the broken dates fail;
        # one task per date, so the failed set is exactly those dates.
        result = run_cli(redis.url, wh, home, "enqueue", *OPENING, "--batch", "1", "--pipeline", str(pipeline),
                         "--alerts", "immediate")
        assert result.exit_code == 0, result.output
        run_id = result.stdout.strip().splitlines()[-1]
        store = RedisStateStore.from_url(redis.url)
        run = wait_run(store, run_id, timeout=180)
        assert run.status is RunStatus.failed
        failed = {t for t, s in store.states(run_id).items() if s is TaskStatus.failed}
        assert failed == {f"team_defense_game_summary@{d}" for d in days}

        events = envelope_server.wait_events(len(failed), timeout=10)
        assert len(events) == len(failed), [e.get("message") for e in events]
        assert {e["tags"]["task_id"] for e in events} == failed
        assert len({tuple(e["fingerprint"]) for e in events}) == 1  # both dates: one Sentry issue
        for event in events:
            assert event["fingerprint"][0] == "team_defense_game_summary"
            assert event["tags"]["run_id"] == run_id
            assert event["tags"]["category"] == event["fingerprint"][1]
            assert event["message"].startswith(f"team_defense_game_summary: {event['fingerprint'][1]}: ")
            assert "password ***" in json.dumps(event)
        raw = b"\n".join(envelope_server.bodies)
        assert RUN_SECRET.encode() not in raw
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
