"""Suggested commands work when pasted: after a strict `dependency_gap`, the command `gaps` prints
carries `--with-upstream`, and running it as printed fills every gap."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from backfill.state import RunStatus
from tests.conftest import REPO
from tests.integration.engine_harness import cli, enqueue, wait_run

pytestmark = pytest.mark.integration
NEXT_WEEK = ("--start", "2023-11-08", "--end", "2023-11-14")


def test_the_fill_command_gaps_prints_after_a_dependency_gap_works_when_pasted(env: dict, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    env["worker"]()
    # As in the execution guide: Phase 3 from the season start, then Phase 4 of a week whose own
    # Phase 3 never ran.
    first = enqueue(env, "--phases", "3", "--batch", "auto", selection=("--start", "2023-10-01", "--end", "2023-11-07"))
    assert wait_run(env["store"], first, timeout=90).status is RunStatus.succeeded
    run_id = enqueue(env, "--phases", "4", "--batch", "auto", selection=NEXT_WEEK)
    run = wait_run(env["store"], run_id, timeout=90)
    assert run.status is RunStatus.failed
    reasons = [r.get("error_message") or "" for r in env["store"].results(run_id).values()]
    assert any("upstream partitions missing" in m and "--with-upstream" in m for m in reasons), reasons

    # The report, read where the on-call person is (no pipelines/nba there): every command it
    # suggests names the run's pipeline, so it works when pasted in that same directory.
    elsewhere = tmp_path / "on-call"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    log = cli(env, "report", run_id)
    assert log.exit_code == 0, log.output
    suggested = re.findall(r"^  (backfill (?:gaps|enqueue|validate) .+)$", log.stdout, re.M)
    assert suggested and all("--pipeline" in c for c in suggested), log.stdout
    fill = next(shlex.split(c) for c in suggested if c.startswith("backfill gaps"))
    listed = cli(env, *fill[1:])
    assert listed.exit_code == 1 and "--with-upstream" in listed.stderr, listed.output
    monkeypatch.chdir(REPO)

    gaps = cli(env, "gaps", *NEXT_WEEK, "--phases", "4")
    assert gaps.exit_code == 1
    printed = re.search(r"`(backfill enqueue [^`]+)`", gaps.stderr)
    assert printed is not None, gaps.stderr
    command = shlex.split(printed.group(1))
    assert "--with-upstream" in command, "Phase 3 of that week never ran: without the flag it fails the same way"
    pasted = cli(env, *command[1:], "--wait")
    assert pasted.exit_code == 0, pasted.output
    again = cli(env, "gaps", *NEXT_WEEK, "--phases", "4")
    assert again.exit_code == 0, again.output
