"""The warehouse throttle against a real redis-server: backoff, recovery, leases, concurrency."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from backfill.throttle import Throttle
from tests.support.throttle_load import hold_slots

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(redis_server):  # type: ignore[no-untyped-def]
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.close()


def test_limit_halves_on_quota_errors_and_recovers_after_successes(client: redis.Redis) -> None:
    t = Throttle(client, initial_limit=8, min_limit=1, recover_after=3)
    t.cut_cooldown_seconds = 0
    assert t.limit() == 8
    assert t.record_quota_error() == 4
    assert t.record_quota_error() == 2
    assert t.record_quota_error() == 1
    assert t.record_quota_error() == 1, "never below min_limit"
    t.record_success()
    t.record_success()
    assert t.limit() == 1
    t.record_success()
    assert t.limit() == 2, "recovers by one after recover_after successes"
    t.record_success()
    t.record_quota_error()
    assert t.limit() == 1
    t.record_success()
    t.record_success()
    assert t.limit() == 1, "a quota error resets the success streak"
    for _ in range(3 * 20):
        t.record_success()
    assert t.limit() == 8, "never above the configured max"
    reasons = [(e["reason"], e["previous"], e["limit"]) for e in t.events()]
    assert reasons[:3] == [("quota_error", 8, 4), ("quota_error", 4, 2), ("quota_error", 2, 1)]
    assert reasons[-1] == ("recovered", 7, 8)
    assert all("time" in e and e["at"] > 0 for e in t.events())


def test_a_burst_of_quota_errors_cuts_once_per_cooldown(client: redis.Redis) -> None:
    t = Throttle(client, initial_limit=16)
    t.cut_cooldown_seconds = 5
    for _ in range(10):
        t.record_quota_error()
    assert t.limit() == 8


def test_events_list_is_capped(client: redis.Redis) -> None:
    t = Throttle(client, initial_limit=2, recover_after=1)
    t.cut_cooldown_seconds = 0
    t.max_events = 5
    for _ in range(10):
        t.record_quota_error()
        t.record_success()
    assert len(t.events()) == 5


def test_slot_times_out_when_the_limit_is_reached(client: redis.Redis) -> None:
    t = Throttle(client, initial_limit=1)
    with t.slot("a"):
        assert t.in_use() == 1
        start = time.monotonic()
        with pytest.raises(TimeoutError), t.slot("b", timeout=0.3):
            pass
        assert time.monotonic() - start < 2
    assert t.in_use() == 0
    with t.slot("b", timeout=0.3):
        pass


_HOLD_AND_WAIT = """
import sys, time, redis
from backfill.throttle import Throttle
t = Throttle(redis.Redis.from_url(sys.argv[1]), initial_limit=1, lease_seconds=1.0)
with t.slot("doomed-worker"):
    print("holding", flush=True)
    time.sleep(60)
"""


def test_slot_of_a_killed_holder_comes_back_after_its_lease(client: redis.Redis, redis_server) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_AND_WAIT, redis_server.url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        proc.kill()  # SIGKILL: no finally block runs, the slot is never given back
        proc.wait(timeout=10)
        t = Throttle(client, initial_limit=1, lease_seconds=1.0)
        assert t.try_acquire("impatient") is None
        start = time.monotonic()
        with t.slot("patient", timeout=5):
            waited = time.monotonic() - start
        assert waited < 2.5
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_concurrent_processes_and_threads_never_exceed_the_limit(client: redis.Redis, redis_server) -> None:  # type: ignore[no-untyped-def]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.throttle_load", redis_server.url, str(i)], cwd=REPO)
             for i in range(4)]
    t = Throttle(client, initial_limit=3)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        c = redis.Redis.from_url(redis_server.url)
        try:
            hold_slots(t, c, f"t{k}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert not errors
    seen = [int(x) for x in client.lrange("seen", 0, -1)]
    assert len(seen) == 8 * 15
    assert max(seen) <= 3
    assert max(seen) >= 2, "the test should actually exercise concurrency"
    assert t.in_use() == 0


def test_a_lowered_max_clamps_a_live_limit(client: redis.Redis) -> None:
    first = Throttle(client, initial_limit=10)
    with first.slot("x"):
        pass
    assert first.limit() == 10
    t = Throttle(client, initial_limit=4)
    with t.slot("x"):
        pass
    assert t.limit() == 4


def test_under_steady_quota_errors_the_limit_probes_back_up(client: redis.Redis) -> None:
    # 20 successes in a row never happen at a steady 30% of quota errors: only the probe raises it.
    t = Throttle(client, initial_limit=8, recover_after=20, probe_seconds=0.3)
    t.cut_cooldown_seconds = 0
    for _ in range(3):
        t.record_quota_error()
    assert t.limit() == 1
    t.record_success()
    assert t.limit() == 1, "no probe before probe_seconds without a change"
    time.sleep(0.35)
    assert t.record_success() == 2
    time.sleep(0.35)
    t.record_quota_error()  # a cut restarts the wait for the next probe
    t.record_success()
    assert t.limit() == 1
    reasons = [e["reason"] for e in t.events()]
    assert reasons.count("probe") == 1 and reasons[-1] == "quota_error", reasons


def test_throttle_reset_puts_the_limit_back_and_keeps_slots(client: redis.Redis, redis_server) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from backfill.cli import cli

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(cli, ["--redis-url", redis_server.url, "throttle", *args], catch_exceptions=False)

    nothing = run("reset")
    assert nothing.exit_code == 2 and "no worker has used the throttle" in nothing.output, nothing.output
    t = Throttle(client, initial_limit=8)
    t.cut_cooldown_seconds = 0
    held = t.try_acquire("running-job")
    for _ in range(3):
        t.record_quota_error()
    assert t.limit() == 1
    shown = run("status", "--json")
    assert shown.exit_code == 0 and json.loads(shown.output)["limit"] == 1
    done = run("reset", "--json")
    assert done.exit_code == 0 and json.loads(done.output) == {"previous": 1, "limit": 8}, done.output
    assert t.limit() == 8 and t.in_use() == 1 and held is not None
    assert t.events()[-1]["reason"] == "reset"
    human = run("status")
    assert "throttle limit 8 of max 8; 1 slot(s) in use" in human.output and "reset: 1 -> 8" in human.output
