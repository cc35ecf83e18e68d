"""`backfill demo`, the README's main job (what `scripts/demo` runs after set-up), from an empty home.

It starts its own Redis and worker under the home, loads the sample season, runs the 7-day test
backfill and prints the summary; `backfill down` stops what it started.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def backfill(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    exe = str(Path(sys.executable).parent / "backfill")
    return subprocess.run([exe, "--home", str(home), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def celery(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`celery -A workers.app ...` as the monitoring guide writes it: nothing exported, run where `.backfill/` is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "celery", "-A", "workers.app", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_demo_runs_the_test_week_from_an_empty_home_and_down_stops_it(tmp_path: Path) -> None:
    # The default home (`.backfill` in the directory the reader works in), so Celery's own
    # commands run there with nothing exported must find the demo's Redis and worker.
    home = tmp_path / ".backfill"
    try:
        first = backfill(home, "demo")
        assert first.returncode == 0, first.stderr[-3000:]
        run_id = first.stdout.strip().splitlines()[-1]
        assert f"run {run_id}: succeeded - 10 succeeded, 0 partial, 0 failed" in first.stderr, first.stderr[-3000:]
        assert f"`backfill --home {home} down`" in first.stderr  # the hint repeats --home, ready to paste
        status = backfill(home, "status", run_id)
        assert status.returncode == 0 and f"run {run_id} succeeded - 10/10 settled" in status.stdout, status.stdout
        gaps = backfill(home, "gaps", "--start", "2023-11-01", "--end", "2023-11-07", "--phases", "3,4")
        assert gaps.returncode == 0 and "Gaps: 0 of 70" in gaps.stdout, gaps.stdout
        ping = celery(tmp_path, "inspect", "ping", "--timeout", "5")
        assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr
        assert "backfill:" not in ping.stderr, ping.stderr  # the right Redis: no warning
        revoke = celery(tmp_path, "control", "revoke", f"{run_id}|player_game_summary@2023-11-01|0")
        assert revoke.returncode == 0 and "revoked" in revoke.stdout.lower(), revoke.stdout + revoke.stderr
        purge = celery(tmp_path, "purge", "-f")
        assert purge.returncode == 0 and "backfill:" not in purge.stderr, purge.stdout + purge.stderr
    finally:
        down = backfill(home, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped worker" in down.stdout and "stopped redis-server" in down.stdout, down.stdout
    for pid in map(int, re.findall(r"\(pid (\d+)\)", down.stdout)):
        assert not running(pid), f"pid {pid} still runs after `backfill down`"


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited child the container's init has not reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
