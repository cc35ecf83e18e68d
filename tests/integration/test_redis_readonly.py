"""A failover that leaves BACKFILL_REDIS_URL on a read-only replica for a while.

Managed Redis (Memorystore, ElastiCache) and Sentinel setups demote the old primary to a
replica during a failover or switchover: it keeps answering and serving reads, but every write
gets `READONLY You can't write against a read only replica`. Here the test Redis is made a
replica of a port nothing listens on (a replica whose master is unreachable keeps its data and
serves it read-only), held so, then promoted back with `REPLICAOF NO ONE`; and, last, a real
switchover (`FAILOVER`) to a second server behind one stable address.

Real redis-server, a real worker process, DEFAULT settings (visibility timeout 2 h, lease 30 s,
stall_after 30 s, watchdog on).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from backfill.state import RedisStateStore, RunStatus, TaskStatus
from backfill.throttle import Throttle
from tests.conftest import RedisServer, free_port
from tests.integration.engine_harness import OPENING, Worker, assert_written_once, cli, enqueue, run_cli, wait_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]
READ_ONLY_SECONDS = 10


@contextmanager
def read_only(server: RedisServer) -> Iterator[redis.Redis]:
    """The server as a replica of a port nothing listens on (its data stays; writes get READONLY)
    for the block, then a primary again."""
    admin = redis.Redis(port=server.port)
    admin.replicaof("127.0.0.1", free_port())
    with pytest.raises(redis.exceptions.ReadOnlyError):
        admin.set("backfill:test:probe", "1")
    try:
        yield admin
    finally:
        admin.replicaof("NO", "ONE")


def promote_in(server: RedisServer, seconds: float) -> None:
    """`REPLICAOF NO ONE` from another thread in `seconds` (the failover completes)."""
    threading.Timer(seconds, lambda: redis.Redis(port=server.port).replicaof("NO", "ONE")).start()


def settled(store: RedisStateStore, run_id: str) -> int:
    return sum(1 for s in store.states(run_id).values() if s.finished)


def test_redis_read_only_for_10s_under_a_running_worker_keeps_every_outcome(env: dict) -> None:
    """The worker waits the read-only spell out instead of losing what it was recording.

    Before the fix (6 runs), tasks finishing during the spell raised ReadOnlyError out of their
    bookkeeping into Celery: their outcome was lost, and the run finished only after their
    leases expired and the watchdog re-sent them (`resent` 2, 23-24 s after the primary was
    back); or a task that began during the spell lost its message with it, and the stall healer
    had to re-send it (`healed` 1, 58 s after). Now: 3-4 s after, nothing re-sent.
    """
    worker = env["worker"](concurrency=2)
    # Celery's default for broker_channel_error_retry (False) on a worker of its own queue: the
    # replica's refusal (its blocked BRPOP is answered `UNBLOCKED`, a ResponseError) is a channel
    # error, not a connection error, so that consumer stops for good.
    control = env["worker"](concurrency=1, app="tests.support.celery_conf_app", BACKFILL_TASK_QUEUE="control",
                            BACKFILL_TEST_CELERY_CONF=json.dumps({"broker_channel_error_retry": False}))
    store = env["store"]
    run_id = enqueue(env, "--batch", "1", selection=OPENING)
    wait_run(store, run_id, timeout=60, until=lambda s: Counter(s.states(run_id).values())[TaskStatus.success] >= 5)
    assert store.get_run(run_id).status is RunStatus.running, "the run ended before the spell"  # type: ignore[union-attr]
    with read_only(env["redis"]):
        read_only_at = time.monotonic()
        time.sleep(READ_ONLY_SECONDS)
        during = settled(store, run_id)
    writable_at = time.monotonic()
    wait_run(store, run_id, timeout=120, until=lambda s: settled(s, run_id) > during)
    resumed_after = time.monotonic() - writable_at
    run = wait_run(store, run_id, timeout=120)
    print(f"\nread-only {READ_ONLY_SECONDS}s at {during} of {run.total} settled; next task settled "
          f"{resumed_after:.1f}s after the primary came back; run {run.status.value} "
          f"{time.monotonic() - writable_at:.1f}s after it ({time.monotonic() - read_only_at:.1f}s after it went "
          f"read-only), resent {run.resent}, healed {run.healed}")
    assert worker.proc is not None and worker.proc.poll() is None, "the worker exited"
    assert run.status is RunStatus.succeeded, Counter(store.states(run_id).values())
    # No outcome was lost: nothing waited for its lease to expire, nothing needed the stall healer.
    assert run.resent == 0 and run.healed == 0, run
    assert_written_once(env["wh"], run_id, store.states(run_id))
    # Every warehouse throttle slot was given back (none left to wait for its 10-minute lease).
    assert Throttle(store.client, initial_limit=1).in_use() == 0
    log = worker.log.read_text(errors="replace")
    assert "ReadOnlyError" in log, "the spell did not reach the worker"
    assert "raised unexpected" not in log and " failed\n" not in log, log[-3000:]
    assert control.proc is not None and control.proc.wait(timeout=30) != 0
    # A plain Celery worker dies of the spell: kombu's own parser names it `ResponseError`,
    # hiredis (installed with redis[hiredis]) `ReadOnlyError`.
    died = control.log.read_text(errors="replace")
    assert "Unrecoverable error: server:ResponseError" in died or "ReadOnlyError: You can't write" in died, died[-2000:]


def test_cli_against_a_read_only_redis_says_so_in_one_line_and_exits_3(env: dict) -> None:
    """Reads still work (`status`); a command that writes waits a few seconds, then exit 3."""
    run_id = enqueue(env, "--batch", "1", selection=OPENING)  # no worker: the run stays as it is
    store = env["store"]
    # One sent task looks like its worker died (running, no lease): `status` would re-send it, a
    # write, which a read-only Redis refuses; it shows the progress anyway.
    dead = next(iter(store.inflight(run_id)))
    store.client.hset(f"{store.run_key.format(run_id)}:states", dead, "running")
    with read_only(env["redis"]):
        status = cli(env, "status", run_id, "--json")
        assert status.exit_code == 0, status.output
        assert json.loads(status.stdout)["status"] == "running"
        started = time.monotonic()
        cancel = cli(env, "cancel", run_id)
        waited = time.monotonic() - started
    print(f"\ncancel against a read-only Redis: exit {cancel.exit_code} after {waited:.1f}s: {cancel.stderr.strip()}")
    assert cancel.exit_code == 3, cancel.output
    assert cancel.stderr.startswith("error: Redis at redis://127.0.0.1:") and "is read-only" in cancel.stderr
    assert len(cancel.stderr.strip().splitlines()) == 1, cancel.stderr
    assert env["store"].get_run(run_id).status is RunStatus.running  # type: ignore[union-attr]


def test_a_write_refused_as_read_only_is_retried_over_a_new_connection(redis_server: RedisServer) -> None:
    """redis-py keeps a connection open after a READONLY reply; after a failover that connection
    stays on the demoted node, so every later write would be refused. The state store's client
    closes it and dials the URL again (a new client id), and the write lands once a primary is back."""
    store = RedisStateStore.from_url(redis_server.url)
    before = store.client.client_id()
    with read_only(redis_server):
        promote_in(redis_server, 1.0)
        store.set_open("r1", 3)  # refused, retried by the client until the timer promotes the server
    assert store.open_count("r1") == 3
    assert store.client.client_id() != before


def test_a_workers_send_waits_out_a_read_only_broker(redis_server: RedisServer) -> None:
    """The tasks a settle releases are in flight in run state before their messages go out. kombu
    retries a refused publish a few times within milliseconds, then raises OperationalError: a
    worker's dispatcher retries that for its outage budget, so those tasks are not left to the
    stall healer (seen before the fix: the run finished 58 s after the primary returned, `healed` 1)."""
    from kombu.exceptions import OperationalError
    from pydantic import SecretStr

    from backfill.settings import Settings
    from backfill.state.redis import OUTAGE_BUDGET_SECONDS
    from workers.factory import create_app
    from workers.tasks import CeleryDispatcher

    app = create_app(Settings(redis_url=SecretStr(redis_server.url)))
    client = redis.Redis(port=redis_server.port)
    with read_only(redis_server):
        with pytest.raises(OperationalError):  # the CLI's dispatcher: the error at once
            CeleryDispatcher(app).send("r1", ["p@2023-10-24"])
        promote_in(redis_server, 2.0)
        started = time.monotonic()
        CeleryDispatcher(app, OUTAGE_BUDGET_SECONDS).send("r1", ["p@2023-10-24"])
    assert 2.0 <= time.monotonic() - started < 10
    assert sum(client.llen(k) for k in client.keys("celery*")) == 1


class Endpoint:
    """A stable address in front of Redis (what a DNS name or a virtual IP is to a managed Redis):
    each new connection goes to `target`; connections already open stay where they were."""

    def __init__(self, target: int) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self) -> None:
        self._listener.close()
        for s in self._open:
            s.close()


def test_switchover_to_another_server_behind_the_same_address_run_completes(env: dict, tmp_path: Path) -> None:
    """`FAILOVER` makes a replica the primary and the old primary its read-only replica, and the
    stable address now leads to the new one; what was connected before stays on the old node.

    Before the fix the worker's run-state connections stayed there: every task it took raised
    ReadOnlyError (its message consumed and lost), the watchdog's sweep failed every pass, and the
    run made no progress for the 150 s watched (the symptom seen in the experiment). Now a
    READONLY reply closes the connection and the retry dials the address again.
    """
    old = env["redis"]
    (tmp_path / "new").mkdir()
    new = RedisServer(tmp_path / "new")
    new.start()
    endpoint = Endpoint(old.port)
    url = f"redis://127.0.0.1:{endpoint.port}/0"
    worker = Worker(url, env["wh"], env["home"], concurrency=2)
    try:
        promoted = redis.Redis(port=new.port, decode_responses=True)
        promoted.replicaof("127.0.0.1", old.port)
        while promoted.info("replication")["master_link_status"] != "up":
            time.sleep(0.05)
        worker.start()
        result = run_cli(url, env["wh"], env["home"], "enqueue", "--batch", "1", *OPENING)
        assert result.exit_code == 0, result.output
        run_id = result.stdout.strip().splitlines()[-1]
        store = RedisStateStore(promoted)  # reads the replica, then the primary: current either way
        wait_run(store, run_id, timeout=60, until=lambda s: settled(s, run_id) >= 5)
        assert store.get_run(run_id).status is RunStatus.running, "the run ended before the failover"  # type: ignore[union-attr]
        before = settled(store, run_id)
        redis.Redis(port=old.port).execute_command("FAILOVER", "TO", "127.0.0.1", new.port)
        while promoted.info("replication")["role"] != "master":
            time.sleep(0.05)
        endpoint.target = new.port
        switched_at = time.monotonic()
        run = wait_run(store, run_id, timeout=120)
        print(f"\nswitchover at {before} of {run.total} settled; run {run.status.value} "
              f"{time.monotonic() - switched_at:.1f}s after it, resent {run.resent}, healed {run.healed}")
        assert run.status is RunStatus.succeeded, Counter(store.states(run_id).values())
        assert run.resent == 0 and run.healed == 0, run
        assert "raised unexpected" not in worker.log.read_text(errors="replace")
        assert_written_once(env["wh"], run_id, store.states(run_id))
    finally:
        worker.stop()
        endpoint.close()
        new.stop()
