"""Beside the live pipeline, with real Redis, real workers and the real CLI: trigger leases that
cannot lapse while a run writes, pause and resume, execution windows (a simulated clock), and a
cancel that keeps the live trigger off over half-written windows."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pydantic import SecretStr

from backfill import engine
from backfill.cli import cli as backfill_cli
from backfill.cli.triggers import cli_holder
from backfill.settings import Settings
from backfill.state import RunStatus, TaskStatus
from backfill.triggers import Triggers
from tests.integration.engine_harness import OPENING, assert_written_once, cli, enqueue, wait_run

pytestmark = pytest.mark.integration

FAST_WATCHDOG = {"BACKFILL_WATCHDOG_INTERVAL": "0.5", "BACKFILL_STALL_AFTER": "2"}


def cli_line(*args: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(backfill_cli, list(args), env=env)


def check(env: dict, name: str = "phase3->phase4") -> int:
    return int(cli(env, "triggers", "check", name).exit_code)


def running(env: dict, run_id: str) -> int:
    return sum(1 for s in env["store"].states(run_id).values() if s is TaskStatus.running)


def settled(env: dict, run_id: str) -> int:
    return sum(1 for s in env["store"].states(run_id).values() if s.finished)


def wait_for(predicate, timeout: float = 30, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_default_renew_interval_is_well_inside_the_default_lease() -> None:
    s = Settings()
    assert s.trigger_lease_seconds == engine.TRIGGER_TTL_SECONDS == 3600
    assert s.trigger_renew_seconds == engine.TRIGGER_RENEW_SECONDS == 60
    assert s.trigger_renew_seconds * 10 <= s.trigger_lease_seconds, "dozens of renewals per lease"
    assert s.watchdog_interval * 3 <= s.trigger_renew_seconds, "the watchdog sweeps several times per renewal"
    with pytest.raises(ValueError, match="at most a third"):
        Settings(trigger_lease_seconds=10, trigger_renew_seconds=5)
    out = cli_line("--redis-url", "redis://127.0.0.1:1/0", "triggers", "check", "phase3->phase4",
                   env={"BACKFILL_TRIGGER_LEASE_SECONDS": "10", "BACKFILL_TRIGGER_RENEW_SECONDS": "5"})
    assert out.exit_code == 2 and "BACKFILL_TRIGGER_RENEW_SECONDS" in out.stderr and "at most a third" in out.stderr


def test_a_task_longer_than_the_lease_never_lets_the_pause_lapse(env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # A 3 s lease renewed every 0.5 s, one task that writes for 5 s: only the watchdog's renewal
    # can keep the pause (a renewal at task start would let it lapse at 3 s).
    lease = {"BACKFILL_TRIGGER_LEASE_SECONDS": "3", "BACKFILL_TRIGGER_RENEW_SECONDS": "0.5"}
    for k, v in lease.items():
        monkeypatch.setenv(k, v)
    env["worker"](2, "tests.support.faulty_app", **lease, **FAST_WATCHDOG,
                  BACKFILL_TEST_SLOW_TABLES="nba_analytics.player_game_summary=5")
    t = Triggers(env["store"].client)
    run_id = enqueue(env, "--processors", "player_game_summary",
                     selection=("--start", "2023-11-01", "--end", "2023-11-01", "--phases", "3"))
    started = time.monotonic()
    lowest_left = 3.0
    # While the task is unsettled the pause must be there (read first: a pause released right after
    # the task settled is what should happen).
    while not all(s.finished for s in env["store"].states(run_id).values()):
        leases = t.leases("phase3->phase4")
        if all(s.finished for s in env["store"].states(run_id).values()):
            break
        assert leases and leases[0]["holder"] == run_id, f"the pause lapsed after {time.monotonic() - started:.1f}s"
        lowest_left = min(lowest_left, leases[0]["until"] - time.time())
        assert time.monotonic() - started < 30
        time.sleep(0.1)
    assert time.monotonic() - started > 4.5, "the task ran longer than the lease"
    run = wait_run(env["store"], run_id, timeout=30)
    assert run.status is RunStatus.succeeded
    assert lowest_left > 0.5, lowest_left
    assert t.is_enabled("phase3->phase4"), "released when the run ended"


def test_pause_mid_run_then_resume_writes_every_partition_once(env: dict) -> None:
    env["worker"](2, "tests.support.faulty_app", **FAST_WATCHDOG,
                  BACKFILL_TEST_SLOW_TABLES="nba_analytics.team_offense_game_summary=0.3")
    assert check(env) == 0, "before the run the live side may fire"
    run_id = enqueue(env, "--batch", "1", selection=OPENING)
    assert check(env) == 1, "during the run it may not"
    wait_for(lambda: settled(env, run_id) >= 10, what="10 settled tasks")
    assert env["store"].get_run(run_id).status is RunStatus.running  # type: ignore[union-attr]
    out = cli(env, "pause", run_id, "--reason", "stop for the night")
    assert out.exit_code == 0, out.output
    assert f"run {run_id} paused since" in out.stdout and cli_holder() in out.stdout
    wait_for(lambda: running(env, run_id) == 0, what="the running tasks to settle")
    frozen = {k: v for k, v in env["store"].states(run_id).items()}
    started = dict(env["store"].started_at(run_id))
    time.sleep(3)  # several watchdog sweeps, longer than stall_after
    assert env["store"].started_at(run_id) == started, "no task started while paused"
    assert env["store"].states(run_id) == frozen
    assert any(s is TaskStatus.pending for s in frozen.values()), "paused mid-run, work left"
    info = json.loads(cli(env, "status", run_id, "--json").stdout)
    assert info["status"] == "paused" and info["eta_seconds"] is None and info["stalled"] is None
    assert info["paused"]["by"] == cli_holder() and info["paused"]["reason"] == "stop for the night"
    assert info["healed"]["count"] == 0, "the watchdog did not treat it as stalled"
    human = cli(env, "status", run_id).stdout
    assert "paused since" in human and "no ETA" in human
    assert check(env) == 1, "trigger pauses are kept while paused"
    assert f"backfill resume {run_id} --wait" in cli(env, "report", run_id).stdout, "the log says how to go on"
    assert cli(env, "pause", "bf-nope").exit_code == 2

    out = cli(env, "resume", run_id)
    assert out.exit_code == 0 and "from a manual pause" in out.stdout, out.output
    run = wait_run(env["store"], run_id, timeout=60)
    assert run.status is RunStatus.succeeded
    assert_written_once(env["wh"], run_id, env["store"].states(run_id))
    assert check(env) == 0, "after the run the live side may fire again"
    assert cli(env, "pause", run_id).exit_code == 2, "a finished run cannot be paused"


def test_a_window_closing_mid_run_pauses_it_and_reopening_resumes_it(env: dict, tmp_path: Path) -> None:
    from workers.factory import create_app
    from workers.tasks import CeleryDispatcher

    # The workers' own watchdog is off: the test's sweep, on a simulated clock, is the only one.
    env["worker"](2, "tests.support.faulty_app", BACKFILL_WATCHDOG="false",
                  BACKFILL_TEST_SLOW_TABLES="nba_analytics.team_offense_game_summary=0.2")
    settings = Settings(redis_url=SecretStr(env["redis"].url))
    store, triggers = env["store"], Triggers(env["store"].client)
    dispatcher = CeleryDispatcher(create_app(settings))
    night = dt.datetime(2026, 12, 7, 23, 0, tzinfo=dt.UTC)  # a Monday, inside 22:00-07:00 UTC
    morning = dt.datetime(2026, 12, 8, 7, 30, tzinfo=dt.UTC)

    def sweep(at: dt.datetime) -> None:
        engine.sweep(store, dispatcher, settings, lambda: None, triggers, clock=lambda: at)

    run_id = enqueue(env, "--batch", "1", "--window", "22:00-07:00", "--tz", "UTC", selection=OPENING)
    sweep(night)
    assert store.get_run(run_id).status is RunStatus.running  # type: ignore[union-attr]
    wait_for(lambda: settled(env, run_id) >= 8, what="8 settled tasks")
    sweep(morning)
    run = store.get_run(run_id)
    assert run is not None and run.status is RunStatus.paused and run.pause_kind == "window"
    wait_for(lambda: running(env, run_id) == 0, what="the running tasks to settle")
    started = dict(store.started_at(run_id))
    for _ in range(5):
        sweep(morning)
        time.sleep(0.3)
    assert store.started_at(run_id) == started, "no task starts outside the window"
    info = engine.progress(store, run_id)
    assert info is not None and info["status"] == "paused" and info["eta_seconds"] is None
    assert "opens Tue 2026-12-08 22:00 UTC" in info["paused"]["reason"]
    assert cli(env, "triggers", "check", "phase3->phase4").exit_code == 1

    sweep(night + dt.timedelta(days=1))
    assert store.get_run(run_id).status is RunStatus.running  # type: ignore[union-attr]
    run = wait_run(store, run_id, timeout=60)
    assert run.status is RunStatus.succeeded
    assert_written_once(env["wh"], run_id, store.states(run_id))


def test_cancel_mid_phase_3_keeps_the_live_trigger_paused_and_says_until_when(env: dict) -> None:
    env["worker"](2, "tests.support.faulty_app", **FAST_WATCHDOG,
                  BACKFILL_TEST_SLOW_TABLES="nba_analytics.team_offense_game_summary=0.3")
    run_id = enqueue(env, "--batch", "1", selection=OPENING)
    wait_for(lambda: settled(env, run_id) >= 5, what="5 settled tasks")
    states = env["store"].states(run_id)
    tasks = env["store"].tasks(run_id)
    assert any(s is TaskStatus.pending and tasks[i].phase == 3 for i, s in states.items()), "still in Phase 3"
    out = cli(env, "cancel", run_id, "--settle", "10")
    assert out.exit_code == 0, out.output
    assert "trigger phase3->phase4 stays paused until 20" in out.stdout, out.stdout
    assert check(env) == 1
    time.sleep(1.5)  # the watchdog sweeps a cancelled run that still holds a pause: it stays held
    assert check(env) == 1 and env["store"].get_run(run_id).status is RunStatus.cancelled  # type: ignore[union-attr]
    released = cli(env, "cancel", run_id, "--settle", "0", "--release-triggers")
    assert released.exit_code == 0 and "trigger pauses released (--release-triggers)" in released.stdout
    assert check(env) == 0 and check(env, "phase4->phase5") == 0
