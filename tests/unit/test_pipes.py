"""A reader that goes away (`backfill gaps ... | head`) ends the output, not the command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from backfill.cli.pipes import install
install()
for i in range(100000):
    print(f"line {i}")
print("still running after the reader left", file=sys.stderr)
sys.exit(7)
"""


def test_a_closed_pipe_drops_the_rest_of_the_output_and_keeps_the_commands_exit_code() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(["bash", "-c", f"{sys.executable} -c '{SCRIPT}' | head -1; echo ${{PIPESTATUS[0]}} >&2"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout == "line 0\n"
    assert "still running after the reader left" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "7"


def test_without_it_the_same_script_dies_on_the_broken_pipe() -> None:  # the premise of the wrapper
    env = dict(os.environ, PYTHONPATH=str(REPO))
    script = SCRIPT.replace("install()", "")
    proc = subprocess.run(["bash", "-c", f"{sys.executable} -c '{script}' | head -1; echo ${{PIPESTATUS[0]}} >&2"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert "BrokenPipeError" in proc.stderr and proc.stderr.strip().splitlines()[-1] != "7"
