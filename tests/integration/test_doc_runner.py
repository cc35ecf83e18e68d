"""The guides' runnable commands, run in order through bash, as a newcomer pastes them.

A block fenced as ```` ```console tested ```` is runnable: each `$ ` line is a command (`\\`
continuations joined), the lines after it up to the next `$ ` are its shown output. The blocks
of docs/execution-guide.md, docs/failure-recovery.md and docs/monitoring.md run in that order
against a fresh sample-league warehouse, a real redis-server and a real Celery worker (started
before the first command that needs one, as the guide tells the reader to in a terminal). Each
command must exit 0, or the code its `# exit N` comment states; every shown output line (bar
`...` and progress bars) must appear in what it printed, with run ids, times, durations, rates,
ports and pids read as wildcards, and whitespace and table rules collapsed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.engine_harness import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
GUIDES = ["docs/execution-guide.md", "docs/failure-recovery.md", "docs/monitoring.md"]
NEEDS_WORKER = ("enqueue", "retry", "resume")

_VOLATILE = [  # applied to the escaped expected line, in order
    (r"bf\\-\d{8}\\-\d{6}\\-[0-9a-f]{6}", r"bf-\\d{8}-\\d{6}-[0-9a-f]{6}"),
    (r"\d{4}\\-\d{2}\\-\d{2}T\d{2}:\d{2}:\d{2}(?:\\\.\d+)?(?:\\\+00:00)?", r"\\S+"),
    (r"\d{4}\\-\d{2}\\-\d{2}\\ \d{2}:\d{2}:\d{2}", r"\\S+ \\S+"),
    (r"\b\d{2}:\d{2}(?::\d{2})?\b", r"[\\d:]+"),
    (r"\b\d+h\d+m(?:\d+s)?\b|\b\d+m\d+s\b|\b\d+(?:\\\.\d+)?(?:\\ )?s\b", r"[\\d.hms ]+"),
    (r"\b\d+(?:\\\.\d+)?(/min|\\ tasks/min)", r"[\\d.]+\1"),
    (r"(pid\\ |port\\ |:)\d{4,6}\b", r"\1\\d+"),
    (r"ETA\\ \S+", r"ETA\\ \\S+"),
]


def _collapse(text: str) -> str:
    return re.sub(r"[\s│┃|]+", " ", text).strip()


def pattern(expected: str) -> str:
    """A regex for one shown output line: volatile tokens become wildcards."""
    rx = re.escape(_collapse(expected))
    for volatile, wildcard in _VOLATILE:
        rx = re.sub(volatile, wildcard, rx)
    return rx


@dataclass
class Step:
    file: str
    line: int
    command: str
    expected: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        m = re.search(r"#.*\bexit (\d)\b", self.command)
        return int(m.group(1)) if m else 0


def marked_steps(path: Path) -> list[Step]:
    steps: list[Step] = []
    lines = path.read_text().splitlines()
    inside = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\s*```", line):
            inside = not inside and bool(re.match(r"^\s*```console\s+tested\b", line))
        elif inside and line.startswith("$ "):
            text, start = line[2:], i
            while text.rstrip().endswith("\\"):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i].strip()
            steps.append(Step(str(path.relative_to(REPO)), start + 1, text.strip()))
        elif inside and steps and line.strip() and line.strip() != "..." and "━━" not in line:
            steps[-1].expected.append(line)
        i += 1
    return steps


STEPS = [s for g in GUIDES for s in marked_steps(REPO / g)]


def test_the_guides_mark_a_runnable_path_from_nothing_to_a_reported_test_run() -> None:
    commands = [s.command for s in STEPS]
    assert commands and commands[0].startswith("backfill data sample")
    for needed in ("backfill plan", "backfill enqueue", "backfill gaps", "backfill validate", "backfill report"):
        assert any(c.startswith(needed) for c in commands), needed
    assert sum(len(s.expected) for s in STEPS) >= 10, "the shown output must be checked, not only exit codes"


def test_the_output_patterns_wildcard_only_what_varies() -> None:
    rx = pattern("run bf-20261129-133023-c8c589: succeeded - 5 succeeded of 5 in 8s; 39 tasks/min")
    assert re.search(rx, _collapse("run bf-20270101-000000-abcdef: succeeded - 5 succeeded of 5 in 1m02s; 7 tasks/min"))
    assert not re.search(rx, _collapse("run bf-20270101-000000-abcdef: failed - 5 succeeded of 5 in 8s; 7 tasks/min"))
    assert not re.search(pattern("Gaps: 0 of 70 partitions"), "Gaps: 3 of 70 partitions")


def test_the_guides_commands_run_in_order_and_print_what_they_show(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    warehouse = home / "warehouse.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    # Files the guide writes (test-run.md ...) land in a scratch directory, not in the checkout.
    work = tmp_path / "cwd"
    work.mkdir()
    env.update(BACKFILL_REDIS_URL=redis_server.url, BACKFILL_HOME=str(home), COLUMNS="200",
               BACKFILL_PIPELINE=str(REPO / "pipelines" / "nba"),
               BACKFILL_WAREHOUSE=f"duckdb:///{warehouse}", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    worker: Worker | None = None
    try:
        for step in STEPS:
            words = step.command.split()
            if worker is None and len(words) > 1 and words[1] in NEEDS_WORKER:
                worker = Worker(redis_server.url, warehouse, tmp_path / "worker", concurrency=2).start()
            done = subprocess.run(["bash", "-c", step.command], cwd=work, env=env, capture_output=True, text=True,
                                  timeout=300)
            shown = done.stdout + done.stderr
            where = f"{step.file}:{step.line}: {step.command}\n--- printed:\n{shown[-4000:]}"
            assert done.returncode == step.exit_code, where
            text = "\n".join(_collapse(line) for line in shown.splitlines())
            for expected in step.expected:
                assert re.search(pattern(expected), text), f"shown line not printed: {expected!r}\n{where}"
    finally:
        if worker is not None:
            worker.stop()
