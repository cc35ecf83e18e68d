"""Bad settings and a missing warehouse are bad input: one line, exit 2, nothing created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _backfill(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backfill.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=60)


def test_invalid_environment_setting_is_one_line_and_exit_2() -> None:
    out = _backfill("plan", "--start", "2023-11-01", "--end", "2023-11-02", BACKFILL_CONCURRENCY="0")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert "BACKFILL_CONCURRENCY" in out.stderr and "Traceback" not in out.stderr


def test_plan_against_a_missing_warehouse_creates_no_file(tmp_path: Path) -> None:
    target = tmp_path / "nowhere.duckdb"
    out = _backfill("--warehouse", f"duckdb:///{target}", "plan", "--start", "2023-11-01", "--end", "2023-11-02")
    assert out.returncode == 3
    assert "no warehouse at" in out.stderr and "backfill data sample" in out.stderr
    assert not target.exists()


def test_a_dispatcher_factory_that_is_not_module_function_is_one_line_and_exit_2() -> None:
    out = _backfill("runs", BACKFILL_DISPATCHER="workers.factory.open_dispatcher")
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert "BACKFILL_DISPATCHER" in out.stderr and "Traceback" not in out.stderr
