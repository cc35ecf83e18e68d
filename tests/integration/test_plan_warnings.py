"""Every plan warning says what to run about it, and that command works when pasted.

From states of the sample league that produce each kind of warning (`plan` of the summer, of the
All-Star break, of a mid-season Phase 4 week whose upstream never ran, of dates already done;
`enqueue` of such a week), the command a warning prints is split as bash would and run exactly
as printed (its own --home/--warehouse/--redis-url, nothing added): it must exit 0, and the
warning it fixes must be gone afterwards. Warnings about which nothing needs running say so.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from backfill.state import RunStatus
from tests.integration.engine_harness import REPO, WEEK, cli, wait_run

pytestmark = pytest.mark.integration
COMMAND = re.compile(r"`(backfill [^`]+)`")
UNSATISFIED = "neither planned nor recorded as complete"
SKIPPED = "already succeeded in the run history"


class Pasted:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.exit_code, self.stdout, self.output = proc.returncode, proc.stdout, proc.stdout + proc.stderr


def paste(command: str, env: dict) -> Pasted:
    """The command as printed, split the way bash splits it, run as its own process with no flag
    added, in a shell with no BACKFILL_* variable."""
    words = shlex.split(command)
    assert words[0] == "backfill", command
    shell = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    shell.update(COLUMNS="200")
    return Pasted(subprocess.run([sys.executable, "-m", "backfill.cli", *words[1:]], env=shell, cwd=REPO,
                                 capture_output=True, text=True, timeout=600))


def own_process(env: dict, *args: str) -> Pasted:
    """A command in a process of its own: the CLI's in-process warehouse handles (CliRunner) would
    keep the DuckDB file's lock, and the worker of a later run could not write."""
    words = ["backfill", "--home", str(env["home"]), "--warehouse", f"duckdb:///{env['wh']}",
             "--redis-url", env["redis"].url, *args]
    return paste(shlex.join(words), env)


def advised(output: str) -> list[tuple[str, str]]:
    """Each printed warning and its advice (inline, or the shared line after a group of them);
    fails on a warning printed without any."""
    lines = output.splitlines()
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    for line in lines:
        if line.startswith("warning: "):
            text = line.removeprefix("warning: ")
            if "; fix: `" in text or "(nothing to run: " in text:
                assert not pending, f"warnings left without advice: {pending}"
                out.append((text, text))
            else:
                pending.append(text)
        elif line.startswith(("  fix for the ", "  nothing to run for the ")):
            assert pending and f" {len(pending)} warnings above" in line, (pending, line)
            out += [(w, line.strip()) for w in pending]
            pending = []
    assert not pending, f"warnings printed without advice: {pending}\n{output}"
    return out


def commands(advice: list[tuple[str, str]], about: str) -> list[str]:
    found = {c for w, a in advice if about in w for c in COMMAND.findall(a)}
    return sorted(found)


def test_plan_warnings_about_days_and_windows_say_nothing_needs_running(env: dict) -> None:
    summer = cli(env, "plan", "--start", "2023-07-01", "--end", "2023-07-10")
    assert summer.exit_code == 0, summer.output
    advice = advised(summer.output)
    assert len(advice) == 2 and all("(nothing to run: " in a for _, a in advice), advice
    assert "2023-24 (2023-10-24..2024-06-17)" in summer.output  # where the seasons are
    data = json.loads(cli(env, "plan", "--start", "2023-07-01", "--end", "2023-07-10", "--json").stdout)
    assert [a["warning"] for a in data["advice"]] == data["warnings"]
    assert all(a["command"] is None and a["nothing_to_run"] for a in data["advice"]), data["advice"]

    week = ("--start", "2023-11-01", "--end", "2023-11-07", "--phases", "4")
    early = cli(env, "plan", "--pipeline", "pipelines/nba", *week)
    advice = advised(early.output)
    assert any("bootstrap task(s)" in w for w, _ in advice) and any("cut at the season start" in w for w, _ in advice)
    for w, a in advice:
        if UNSATISFIED not in w:
            assert a.startswith("nothing to run for the") or "(nothing to run: " in a, (w, a)
    [fix] = commands(advice, UNSATISFIED)  # one command for every processor's holes
    words = shlex.split(fix)
    assert words[words.index("plan") + 1:] == ["--pipeline", "pipelines/nba", *week, "--with-upstream"], fix
    assert "--warehouse" in words and "--home" in words, fix  # the globals typed, kept
    assert "--redis-url" in words, fix
    pasted = paste(fix, env)
    assert pasted.exit_code == 0, pasted.output
    assert UNSATISFIED not in pasted.output
    assert {a["command"] for a in json.loads(cli(env, "plan", "--pipeline", "pipelines/nba", *week, "--json").stdout)
            ["advice"] if a["command"]} == {fix}  # --json is left out of the command it gives

    allstar = cli(env, "plan", "--range", "2024-02-14:2024-02-22", "--phases", "3")
    advice = advised(allstar.output)
    [(_, no_games)] = [(w, a) for w, a in advice if "have no games" in w]
    assert "(nothing to run: " in no_games and "`" not in no_games
    [fix] = commands(advice, UNSATISFIED)
    pasted = paste(fix, env)
    assert pasted.exit_code == 0 and UNSATISFIED not in pasted.output, pasted.output
    assert "have no games" in pasted.output  # still true, still nothing to run


def test_enqueue_warnings_fill_the_week_and_redo_the_skipped_dates_when_pasted(env: dict) -> None:
    env["worker"]()
    waited = cli(env, "enqueue", *WEEK, "--batch", "1", "--wait")  # a mid-season week, its upstream never ran
    assert waited.exit_code == 1, waited.output
    [fix] = commands(advised(waited.output), UNSATISFIED)
    words = shlex.split(fix)
    assert words[words.index("enqueue") + 1:] == [*WEEK, "--batch", "1", "--wait", "--with-upstream"], fix
    pasted = paste(fix, env)  # the failed run has ended (--wait): what its warning printed, pasted
    assert pasted.exit_code == 0, pasted.output
    assert own_process(env, "gaps", *WEEK).exit_code == 0

    done = own_process(env, "plan", *WEEK)
    advice = advised(done.output)
    [(_, skipped)] = [(w, a) for w, a in advice if SKIPPED in w]
    assert "(nothing to run: their latest run succeeded" in skipped, skipped
    [redo] = commands(advice, SKIPPED)
    assert shlex.split(redo)[-1] == "--force"
    pasted = paste(redo, env)
    assert pasted.exit_code == 0 and SKIPPED not in pasted.output, pasted.output

    again = own_process(env, "enqueue", *WEEK)
    assert again.exit_code == 0 and "every selected partition's latest run succeeded" in again.output, again.output
    [redo] = commands(advised(again.output), SKIPPED)
    words = shlex.split(redo)
    assert words[words.index("enqueue") + 1:] == [*WEEK, "--force"], redo
    pasted = paste(redo, env)
    assert pasted.exit_code == 0 and SKIPPED not in pasted.output, pasted.output
    run = wait_run(env["store"], pasted.stdout.strip().splitlines()[-1], timeout=120)
    assert run.status is RunStatus.succeeded, run
