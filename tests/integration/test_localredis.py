"""The embedded default Redis: started under the home dir, reused, stopped by `backfill down`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from backfill.errors import CannotConnect
from backfill.localredis import ensure_redis, local_url, stop_local
from backfill.settings import Settings
from tests.conftest import RedisServer, free_port

pytestmark = pytest.mark.integration

BACKFILL = [sys.executable, "-c", "from backfill.cli import main; main()"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("BACKFILL_REDIS_URL", "BACKFILL_HOME")}


@pytest.fixture
def home(tmp_path: Path):  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    yield home
    stop_local(Settings(home=home, redis_url=""))


def test_starts_a_local_redis_under_home_and_reuses_it(home: Path) -> None:
    settings = Settings(home=home, redis_url="")
    url = ensure_redis(settings)
    assert url.startswith("redis://:") and "@127.0.0.1:" in url, "local Redis has a password"
    port = int((home / "redis" / "port").read_text())
    assert f":{port}/0" in url
    assert oct((home / "redis" / "password").stat().st_mode & 0o777) == "0o600"
    client = redis.Redis.from_url(url)
    client.set("kept", "1")
    pid = (home / "redis" / "redis.pid").read_text()
    assert ensure_redis(settings) == url
    assert (home / "redis" / "redis.pid").read_text() == pid, "second call reuses the running server"
    assert local_url(settings) == url
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()
    client.close()

    out = subprocess.run([*BACKFILL, "--home", str(home), "down"], env=_env(), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "stopped redis-server" in out.stdout
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()

    again = subprocess.run([*BACKFILL, "--home", str(home), "down"], env=_env(), capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0 and "nothing was running" in again.stdout

    assert ensure_redis(settings) == url, "restarts on the port chosen the first time"
    assert redis.Redis.from_url(url).get("kept") == b"1", "the RDB snapshot in home survives down"


def test_down_stops_recorded_workers(home: Path) -> None:
    worker = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)",
                               "celery-worker-standin"], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None and worker.stdout.readline().strip() == "up"
    pids = home / "pids"
    pids.mkdir(parents=True)
    (pids / "worker-1.pid").write_text(f"{worker.pid}\n")
    (pids / "stale.pid").write_text("999999999\n")
    stopped = stop_local(Settings(home=home, redis_url=""))
    assert stopped == [f"worker worker-1 (pid {worker.pid})"]
    worker.wait(timeout=10)  # stop_local reaped it already when it is its child, as here
    assert not Path(f"/proc/{worker.pid}").exists()
    assert not list(pids.glob("*.pid"))


def test_a_configured_password_url_is_used(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password="s3cret-pw")
    server.start()
    try:
        settings = Settings(home=tmp_path / "home", redis_url=server.url)
        assert ensure_redis(settings) == server.url
        assert not (tmp_path / "home" / "redis").exists(), "no local Redis when a URL is configured"
    finally:
        server.stop()


def test_a_configured_url_that_does_not_answer_is_exit_3_without_the_password(tmp_path: Path) -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(CannotConnect) as info:
        ensure_redis(Settings(home=tmp_path, redis_url=url))
    assert "hunter2-secret" not in info.value.one_line()
    assert "127.0.0.1" in info.value.one_line()

    out = subprocess.run([*BACKFILL, "--home", str(tmp_path), "--redis-url", url, "triggers", "status"],
                         env=_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 3
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "does not answer" in out.stderr
    assert "hunter2-secret" not in out.stderr + out.stdout


def test_backfill_worker_starts_celery_on_the_local_redis_and_down_stops_both(home: Path) -> None:
    from tests.conftest import REPO

    log = home.parent / "worker.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([*BACKFILL, "--home", str(home), "worker"], env=_env(), cwd=REPO,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "ready" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        assert "ready" in log.read_text(), log.read_text()
        assert "--pool threads" in log.read_text(), "a DuckDB warehouse gets the threads pool"
        assert (home / "pids" / f"worker-{proc.pid}.pid").exists(), "exec keeps the pid that down will stop"
        out = subprocess.run([*BACKFILL, "--home", str(home), "down"], env=_env(), capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"stopped worker worker-{proc.pid}" in out.stdout and "stopped redis-server" in out.stdout
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_celery_commands_find_the_clis_local_redis_or_say_which_redis_they_use(home: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    from backfill.localredis import celery_settings

    nothing = Settings(home=home, redis_url="")
    settings, note = celery_settings(nothing)  # no record yet: says it falls back, and to what
    assert settings.redis_url_value == "" and note is not None
    assert f"no local Redis is recorded under {home / 'redis'}" in note and "127.0.0.1:6379" in note

    url = ensure_redis(nothing)
    settings, note = celery_settings(nothing)  # the CLI's own Redis, read the way the CLI reads it
    assert settings.redis_url_value == url
    assert note is not None and "holds no backfill runs" in note and "***" in note and url not in note
    redis.Redis.from_url(url).zadd("backfill:runs", {"bf-1": 1.0})
    assert celery_settings(nothing) == (settings, None)

    exported = Settings(home=home, redis_url=redis_server.url)  # the variable wins over the record
    settings, note = celery_settings(exported)
    assert settings.redis_url_value == redis_server.url
    assert note is not None and "BACKFILL_REDIS_URL" in note and "holds no backfill runs" in note

    stop_local(nothing)  # recorded but not running: says so rather than starting one
    settings, note = celery_settings(nothing)
    assert settings.redis_url_value == url and note is not None and "does not answer" in note
