"""One Settings: the CLI uses its flags, builds no Celery app and starts no Sentry on import."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, RedisServer

pytestmark = pytest.mark.integration


def test_importing_the_cli_builds_no_celery_app_and_starts_no_sentry() -> None:
    code = (
        "import sys\n"
        "import backfill.cli\n"
        "from backfill.cli import cli\n"
        "assert 'workers.app' not in sys.modules, 'workers.app imported'\n"
        "assert 'workers.factory' not in sys.modules, 'an app factory imported'\n"
        "assert 'celery' not in sys.modules, 'celery imported'\n"
        "if 'sentry_sdk' in sys.modules:\n"
        "    import sentry_sdk\n"
        "    assert not sentry_sdk.get_client().is_active(), 'sentry initialised'\n"
        "print('clean')\n")
    env = dict(os.environ, BACKFILL_SENTRY_DSN="https://public@127.0.0.1:9/1", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "clean" in out.stdout, out.stderr


def test_redis_url_flag_wins_over_the_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path)
    server.start()
    try:
        env = dict(os.environ, BACKFILL_REDIS_URL="redis://127.0.0.1:1/0", PYTHONPATH=str(REPO),
                   BACKFILL_HOME=str(tmp_path / "home"))
        out = subprocess.run([sys.executable, "-m", "backfill.cli", "--redis-url", server.url, "runs", "--json"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
        bad = subprocess.run([sys.executable, "-m", "backfill.cli", "runs", "--json"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 3, bad.stderr  # without the flag, the environment's (dead) Redis is used
    finally:
        server.stop()
