"""Walking the guides' ```` ```console tested ```` blocks as a reader would, in one bash.

A block fenced as ```` ```console tested ```` is runnable: each `$ ` line is a command (`\\`
continuations joined), the lines after it up to the next `$ ` are its shown output. `walk` runs
the steps of one or more guides in order from a fresh home directory (its own BACKFILL_HOME and
warehouse, a real redis-server, a real Celery worker started before the first command that needs
one). All lines go to the same shell, so a variable one sets (`RUN=$(backfill enqueue ...)`) is
there for the lines after it. A block fenced ```` ```console tested setup ```` recreates the state a
guide starts from (the sample league, the runs of the guide before it): a walk of the guide alone
runs it first, a walk of several guides in order leaves it out (the guides before made that
state). Each command must exit 0, or the code its `# exit N` comment
states; every shown output line (bar `...` and progress bars) must appear in what it printed,
with run ids, times, durations, rates, ports, pids and the user@host of a CLI trigger pause read
as wildcards, and whitespace and table rules collapsed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.engine_harness import Worker

REPO = Path(__file__).resolve().parents[2]
ALL_GUIDES = ["docs/execution-guide.md", "docs/failure-recovery.md", "docs/monitoring.md", "docs/troubleshooting.md",
          "docs/decisions.md"]
NEEDS_WORKER = re.compile(r"\bbackfill\s+(?:enqueue|retry|resume)\b")

_VOLATILE = [  # applied to the escaped expected line, in order
    (r"bf\\-\d{8}\\-\d{6}\\-[0-9a-f]{6}", r"bf-\\d{8}-\\d{6}-[0-9a-f]{6}"),
    (r"\d{4}\\-\d{2}\\-\d{2}T\d{2}:\d{2}:\d{2}(?:\\\.\d+)?(?:\\\+00:00)?", r"\\S+"),
    (r"\d{4}\\-\d{2}\\-\d{2}\\ \d{2}:\d{2}:\d{2}", r"\\S+ \\S+"),
    (r"\b\d{2}:\d{2}(?::\d{2})?\b", r"[\\d:]+"),
    (r"\b\d+h\d+m(?:\d+s)?\b|\b\d+m\d+s\b|\b\d+(?:\\\.\d+)?(?:\\ )?s\b", r"[\\d.hms ]+"),
    (r"\b\d+(?:\\\.\d+)?(/min|\\ tasks/min)", r"[\\d.]+\1"),
    (r"(pid\\ |port\\ |:)\d{4,6}\b", r"\1\\d+"),
    (r"ETA\\ \S+", r"ETA\\ \\S+"),
    (r"cli:[\w\\.-]+@[\w\\.-]+", r"cli:\\S+@\\S+"),  # the holder of a pause taken at the CLI: user@host
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
    setup: bool = False  # in a ```console tested setup``` block

    @property
    def exit_code(self) -> int:
        m = re.search(r"#.*\bexit (\d)\b", self.command)
        return int(m.group(1)) if m else 0


def marked_steps(path: Path, *, setup: bool = True) -> list[Step]:
    """The steps of one guide's tested blocks; its set-up blocks' too unless `setup` is False."""
    steps: list[Step] = []
    lines = path.read_text().splitlines()
    inside = in_setup = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\s*```", line):
            fence = re.match(r"^\s*```console\s+tested(\s+setup)?\s*$", line)
            is_setup = fence is not None and fence.group(1) is not None
            inside = not inside and fence is not None and (setup or not is_setup)
            in_setup = inside and is_setup
        elif inside and line.startswith("$ "):
            text, start = line[2:], i
            while text.rstrip().endswith("\\"):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i].strip()
            steps.append(Step(str(path.relative_to(REPO)), start + 1, text.strip(), setup=in_setup))
        elif inside and steps and line.strip() and line.strip() != "..." and "━━" not in line:
            steps[-1].expected.append(line)
        i += 1
    return steps


def steps_of(*guides: str) -> list[Step]:
    """The guides' steps in order, as one walk: set-up blocks left out, each guide goes on from
    the state the ones before it left."""
    return [s for g in guides for s in marked_steps(REPO / g, setup=False)]


class Terminal:
    """One bash for the whole walk, fed line by line like the reader's terminal.

    Each command's stdout and stderr go to files of their own and its stdin is /dev/null, so a
    command reading its input cannot swallow the lines after it.
    """

    def __init__(self, cwd: Path, env: dict[str, str], scratch: Path) -> None:
        scratch.mkdir()
        self.scratch = scratch
        self.count = 0
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        """The exit code of one command line, and its stdout then its stderr."""
        self.count += 1
        out, err, rc = (self.scratch / f"{self.count}.{kind}" for kind in ("out", "err", "rc"))
        assert self.proc.stdin is not None
        # The newline before `}` ends a trailing `# exit N` comment; rc appears whole (mv) once the command ended.
        self.proc.stdin.write(f"{{ {command}\n}} >'{out}' 2>'{err}' </dev/null; echo $? >'{rc}.part'; "
                              f"mv '{rc}.part' '{rc}'\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while not rc.exists():
            assert self.proc.poll() is None, f"the shell exited ({self.proc.returncode}) in: {command}"
            assert time.monotonic() < deadline, f"still running after {timeout:.0f} s: {command}"
            time.sleep(0.02)
        return int(rc.read_text()), out.read_text(errors="replace") + err.read_text(errors="replace")

    def close(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()  # end of input: the shell exits once its current command ended
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a command still running (a step that timed out)
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the shell and what it runs
            self.proc.wait(timeout=10)



def walk(steps: list[Step], tmp_path: Path, redis_url: str, *, check_output: bool = True,
         after: Callable[[Step, str], None] | None = None) -> None:
    """Run `steps` in one bash from a fresh home under `tmp_path`: only BACKFILL_REDIS_URL (the
    test's Redis), BACKFILL_HOME, BACKFILL_WAREHOUSE (the home's file) and BACKFILL_PIPELINE are
    set, as a reader's shell would have them; nothing else of the test process's BACKFILL_*."""
    home = tmp_path / "home"
    warehouse = home / "warehouse.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    # Files the guide writes (test-run.md ...) land in a scratch directory, not in the checkout.
    work = tmp_path / "cwd"
    work.mkdir()
    env.update(BACKFILL_REDIS_URL=redis_url, BACKFILL_HOME=str(home), COLUMNS="200",
               BACKFILL_PIPELINE=str(REPO / "pipelines" / "nba"),
               BACKFILL_WAREHOUSE=f"duckdb:///{warehouse}", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    worker: Worker | None = None
    terminal = Terminal(work, env, tmp_path / "terminal")
    try:
        for step in steps:
            if worker is None and NEEDS_WORKER.search(step.command):
                worker = Worker(redis_url, warehouse, tmp_path / "worker", concurrency=2).start()
            code, shown = terminal.run(step.command, timeout=300)
            where = f"{step.file}:{step.line}: {step.command}\n--- printed:\n{shown[-4000:]}"
            assert code == step.exit_code, where
            if check_output:
                text = "\n".join(_collapse(line) for line in shown.splitlines())
                for expected in step.expected:
                    assert re.search(pattern(expected), text), f"shown line not printed: {expected!r}\n{where}"
            if after is not None:
                after(step, shown)
    finally:
        terminal.close()
        if worker is not None:
            worker.stop()
