"""The run commands as a user drives them: --wait, --dry-run, skipping done work, secrets never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backfill.state import RedisStateStore, RunStatus
from backfill.throttle import Throttle
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import RedisServer
from tests.integration.engine_harness import OPENING, WEEK, Worker, cli, enqueue, history, run_cli, wait_run

pytestmark = pytest.mark.integration


def test_dry_run_prints_the_plan_and_enqueues_nothing(env: dict) -> None:
    result = cli(env, "enqueue", *WEEK, "--batch", "1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "70 tasks in 4 waves" in result.output
    assert env["store"].list_runs() == []


def test_enqueue_wait_then_rerun_skips_successful_tasks_unless_forced(env: dict) -> None:
    env["worker"]()
    result = cli(env, "enqueue", *OPENING, "--batch", "1", "--wait")
    assert result.exit_code == 0, result.output
    total = env["store"].list_runs()[0].total
    assert f"{total}/{total}" in result.output and "succeeded" in result.output
    again = cli(env, "enqueue", *OPENING)
    assert again.exit_code == 0 and "nothing to do" in again.output
    forced = enqueue(env, "--force", "--processors", "team_offense_game_summary", "--batch", "1", selection=OPENING)
    assert wait_run(env["store"], forced).status is RunStatus.succeeded
    assert env["store"].get_run(forced).total == total // 10  # type: ignore[union-attr]
    runs = json.loads(cli(env, "runs", "--json").stdout)
    assert [r["run_id"] for r in runs][0] == forced and len(runs) == 2


def test_redis_password_never_reaches_logs_status_messages_or_state(tmp_path: Path, league_template: Path) -> None:
    secret = "planted-Secret-7f3c9a"
    server = RedisServer(tmp_path, password=secret)
    server.start()
    wh = tmp_path / "wh.duckdb"
    wh.write_bytes(league_template.read_bytes())
    home = tmp_path / "home"
    worker = Worker(server.url, wh, home).start()
    try:
        result = run_cli(server.url, wh, home, "enqueue", *OPENING, "--wait")
        assert result.exit_code == 0, result.output
        run_id = result.stdout.strip().splitlines()[-1]
        shown = [result.output, run_cli(server.url, wh, home, "status", run_id, "--json").output,
                 run_cli(server.url, wh, home, "status", run_id).output,
                 run_cli(server.url, wh, home, "runs", "--json").output]
        store = RedisStateStore.from_url(server.url)
        client = store.client
        for key in client.scan_iter(count=1000):  # run state, results, chord bookkeeping, any queued message
            kind = client.type(key)
            value = {"string": client.get, "hash": client.hgetall, "list": lambda k: client.lrange(k, 0, -1),
                     "set": client.smembers, "zset": lambda k: client.zrange(k, 0, -1)}.get(kind, lambda k: "")(key)
            shown.append(f"{key} {value}")
        db = DuckDBWarehouse(wh, hold=False)
        shown.append(repr(db.query("SELECT * FROM nba_reference.backfill_runs")))
        shown.append(repr(db.query("SELECT * FROM nba_reference.processor_run_history")))
    finally:
        worker.stop()
        server.stop()
    shown.append(worker.log.read_text(errors="replace"))
    leaks = [s[max(0, s.find(secret) - 80):s.find(secret) + 40] for s in shown if secret in s]
    assert not leaks


@pytest.mark.slow
def test_quota_errors_on_10_percent_of_calls_are_retried_until_the_run_completes(env: dict) -> None:
    # Seeded: the 3rd and 4th call of each warehouse fail, then 1 in 10 at random (seed 2).
    env["worker"](app="tests.support.faulty_app", BACKFILL_TEST_QUOTA_RATE="0.1", BACKFILL_TEST_QUOTA_SEED="2",
                  BACKFILL_RETRY_BACKOFF_SECONDS="0.1",
                  BACKFILL_MAX_WAREHOUSE_JOBS="4", BACKFILL_THROTTLE_RECOVER_AFTER="3")
    run_id = enqueue(env, selection=OPENING)  # auto batching: 10 multi-date tasks
    run = wait_run(env["store"], run_id, timeout=120)
    results = env["store"].results(run_id)
    failed = {t: (r["attempt"], r["error_category"], r["error_message"]) for t, r in results.items()
              if r["status"] == "failed"}
    assert run.status is RunStatus.succeeded, failed
    assert max(env["store"].attempts(run_id).values()) > 1
    # The throttle visibly dropped on quota errors and crept back up after runs of successes.
    events = Throttle(env["store"].client, "warehouse", initial_limit=4).events()
    assert any(e["limit"] < e["previous"] for e in events), events
    first_drop = next(i for i, e in enumerate(events) if e["limit"] < e["previous"])
    assert any(e["limit"] > e["previous"] for e in events[first_drop:]), events
    # Attempts are recorded durably: the run history keeps the attempt that finally succeeded.
    rows = history(env["wh"], run_id)
    assert {r["status"] for r in rows} == {"success"}
    assert max(r["attempt"] for r in rows) > 1


@pytest.mark.slow
def test_a_steady_30_percent_quota_storm_ends_by_itself_and_the_throttle_probes_back_up(env: dict) -> None:
    """30% of warehouse calls refused all run long (about 5 of 6 attempts fail: each makes several
    calls): retries stay short and bounded by time, and the limit, cut to 1, probes back up.

    At the users' defaults (backoff base 2 s, probe after 30 s) the playbook's 50-task storm
    finished by itself in 394 s (attempts up to 33) where it used to stall with retries 90-130 s
    apart; that takes too long for CI, so here the base and the probe interval are shorter, the
    rate and everything else as shipped."""
    env["worker"](app="tests.support.faulty_app", BACKFILL_TEST_QUOTA_RATE="0.3",
                  BACKFILL_THROTTLE_PROBE_SECONDS="2")
    run_id = enqueue(env, "--batch", "1", selection=("--start", "2023-10-24", "--end", "2023-10-26", "--phases", "3"))
    store = env["store"]
    assert store.get_run(run_id).status is RunStatus.running  # type: ignore[union-attr]
    run = wait_run(store, run_id, timeout=180)
    results = store.results(run_id)
    failed = {t: (r["attempt"], r["error_category"]) for t, r in results.items() if r["status"] == "failed"}
    assert run.status is RunStatus.succeeded, failed
    assert max(store.attempts(run_id).values()) > 2
    reasons = [e["reason"] for e in Throttle(store.client, "warehouse", initial_limit=20).events()]
    assert "quota_error" in reasons and "probe" in reasons, reasons
