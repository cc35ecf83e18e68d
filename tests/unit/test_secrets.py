"""Passwords in Redis URLs and DSNs never reach output: settings dumps, errors, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

from backfill.settings import Settings, redact_url

PLANTED = "PLANTED_SECRET_123"


def test_redact_url_drops_only_the_password() -> None:
    assert redact_url(f"redis://:{PLANTED}@10.0.0.5:6380/2") == "redis://:***@10.0.0.5:6380/2"
    assert redact_url(f"rediss://default:{PLANTED}@cache.example.com:6379/0?ssl_cert_reqs=required") == \
        "rediss://default:***@cache.example.com:6379/0?ssl_cert_reqs=required"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_settings_never_show_the_planted_secret() -> None:
    s = Settings(redis_url=f"redis://:{PLANTED}@127.0.0.1:6379/0", sentry_dsn=f"https://{PLANTED}@sentry.io/1")
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump()), repr(s.redis_url)):
        assert PLANTED not in text
    assert PLANTED in s.redis_url_value, "the value itself is still there for the code that connects"


def test_cli_connection_error_does_not_leak_the_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    out = subprocess.run([sys.executable, "-c", "from backfill.cli import main; main()", "--home", str(tmp_path),
                          "--redis-url", f"redis://:{PLANTED}@127.0.0.1:1/0", "triggers", "status"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 3, out.stderr
    assert PLANTED not in out.stdout
    assert PLANTED not in out.stderr
    assert "redis://:***@127.0.0.1:1/0" in out.stderr


def test_cli_debug_traceback_does_not_leak_the_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    out = subprocess.run([sys.executable, "-c", "from backfill.cli import main; main()", "--debug",
                          "--home", str(tmp_path), "--redis-url", f"redis://:{PLANTED}@127.0.0.1:1/0",
                          "triggers", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 3
    assert PLANTED not in out.stdout + out.stderr


def test_worker_command_line_carries_no_redis_url() -> None:
    from backfill.cli.services import celery_worker_argv, worker_env

    s = Settings(redis_url=f"redis://:{PLANTED}@127.0.0.1:6379/0", warehouse="bigquery://proj")
    argv = celery_worker_argv(s, ["-Q", "backfill"])
    assert PLANTED not in " ".join(argv)
    assert argv[-2:] == ["-Q", "backfill"] and "prefork" in argv and "2" in argv
    assert worker_env(s, s.redis_url_value)["BACKFILL_REDIS_URL"].endswith("@127.0.0.1:6379/0")


def test_a_malformed_url_is_bad_input_without_the_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    out = subprocess.run([sys.executable, "-c", "from backfill.cli import main; main()", "--home", str(tmp_path),
                          "--redis-url", f"http://:{PLANTED}@127.0.0.1:1/0", "triggers", "status"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert PLANTED not in out.stdout + out.stderr
