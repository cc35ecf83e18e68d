"""Downstream trigger pauses as leases, against a real redis-server, and the CLI around them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import redis

from backfill.cli.triggers import cli_holder
from backfill.errors import CannotConnect
from backfill.triggers import Triggers, downstream_enabled, triggers_for_phases

pytestmark = pytest.mark.integration

BACKFILL = [sys.executable, "-c", "from backfill.cli import main; main()"]


@pytest.fixture
def client(redis_server):  # type: ignore[no-untyped-def]
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.close()


def test_writing_a_phase_pauses_the_trigger_it_would_set_off() -> None:
    assert triggers_for_phases([4, 3, 3]) == ["phase3->phase4", "phase4->phase5"]


def test_pause_renew_release(client: redis.Redis) -> None:
    t = Triggers(client)
    assert t.is_enabled("phase3->phase4")
    t.pause("phase3->phase4", "run:abc", 60, reason="backfill 2023-24")
    assert not t.is_enabled("phase3->phase4")
    (row,) = t.status()
    assert row["name"] == "phase3->phase4" and row["paused"] is True
    assert row["holder"] == "run:abc" and row["reason"] == "backfill 2023-24"
    assert row["since"] < row["until"]
    assert t.renew("phase3->phase4", "run:abc", 120)
    assert t.status()[0]["until"] > row["until"]
    assert t.status()[0]["since"] == row["since"], "renewing keeps the start of the pause"
    assert not t.renew("phase3->phase4", "someone-else", 120), "only the holder can renew"
    assert not t.release("phase3->phase4", "someone-else")
    assert not t.is_enabled("phase3->phase4")
    assert t.release("phase3->phase4", "run:abc")
    assert t.is_enabled("phase3->phase4")
    assert not t.release("phase3->phase4", "run:abc")
    assert t.status()[0]["paused"] is False


def test_an_expired_lease_enables_the_trigger_by_itself(client: redis.Redis) -> None:
    t = Triggers(client)
    t.pause("phase3->phase4", "run:crashed", 0.3)
    assert not t.is_enabled("phase3->phase4")
    time.sleep(0.5)
    assert t.is_enabled("phase3->phase4")
    assert not t.renew("phase3->phase4", "run:crashed", 60), "an expired lease cannot be renewed back"
    assert t.status()[0]["holder"] is None


def test_two_holders_the_trigger_waits_for_both(client: redis.Redis) -> None:
    t = Triggers(client)
    t.pause("phase3->phase4", "run:a", 60)
    t.pause("phase3->phase4", "run:b", 120)
    assert [lease["holder"] for lease in t.leases("phase3->phase4")] == ["run:b", "run:a"]
    assert t.status()[0]["holder"] == "run:b", "status names the lease that ends last"
    t.release("phase3->phase4", "run:b")
    assert not t.is_enabled("phase3->phase4")
    t.release("phase3->phase4", "run:a")
    assert t.is_enabled("phase3->phase4")


def test_downstream_enabled_is_the_live_pipelines_call(redis_server, client: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    assert downstream_enabled("phase3->phase4", redis_server.url)
    Triggers(client).pause("phase3->phase4", "run:x", 60)
    assert not downstream_enabled("phase3->phase4", redis_server.url)
    assert downstream_enabled("phase4->phase5", redis_server.url)


def test_downstream_enabled_fails_open_unless_strict(redis_server) -> None:  # type: ignore[no-untyped-def]
    url = redis_server.url
    redis_server.stop()
    assert downstream_enabled("phase3->phase4", url) is True
    with pytest.raises(CannotConnect):
        downstream_enabled("phase3->phase4", url, strict=True)


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BACKFILL_REDIS_URL": url}
    return subprocess.run([*BACKFILL, *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_cli_pause_status_resume(redis_server, client: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    url = redis_server.url
    out = _cli(url, "triggers", "status")
    assert out.returncode == 0, out.stderr
    assert "all downstream triggers are enabled" in out.stdout

    out = _cli(url, "triggers", "pause", "phase3->phase4", "--ttl", "600", "--reason", "manual fix")
    assert out.returncode == 0, out.stderr
    assert cli_holder() in out.stdout
    Triggers(client).pause("phase3->phase4", "run:r1", 60)

    out = _cli(url, "triggers", "status", "--json")
    (row,) = json.loads(out.stdout)
    assert row["paused"] and row["holder"] == cli_holder() and row["reason"] == "manual fix"
    assert {lease["holder"] for lease in row["leases"]} == {cli_holder(), "run:r1"}
    human = _cli(url, "triggers", "status").stdout
    assert "paused" in human and "run:r1" in human and "manual fix" in human

    out = _cli(url, "triggers", "resume", "phase3->phase4")
    assert out.returncode == 0, out.stderr
    assert "still paused by run:r1" in out.stdout

    out = _cli(url, "triggers", "resume", "phase3->phase4", "--all")
    assert out.returncode == 0, out.stderr
    assert "force-released" in out.stderr and "run:r1" in out.stderr
    assert "phase3->phase4: enabled" in out.stdout
    assert Triggers(client).is_enabled("phase3->phase4")


def test_cli_top_level_redis_url_option(redis_server) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run([*BACKFILL, "--redis-url", redis_server.url, "triggers",
                          "pause", "phase4->phase5", "--ttl", "30"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not downstream_enabled("phase4->phase5", redis_server.url)


def test_downstream_enabled_without_any_backfill_redis_is_true(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("BACKFILL_REDIS_URL", raising=False)
    monkeypatch.setenv("BACKFILL_HOME", str(tmp_path))
    assert downstream_enabled("phase3->phase4") is True
    assert not (tmp_path / "redis").exists(), "the library call never starts a Redis"
