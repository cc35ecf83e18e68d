"""stdout that survives its reader going away (`backfill gaps ... | head`).

When `head` has read its lines and exits, the next write raises BrokenPipeError: the command
used to die there with a traceback and exit 1, which reads like "gaps found" or a failure. With
this wrapper the rest of the output is dropped, the command runs to its own end, and the exit
code is its own (gaps: 1 when there are gaps, 0 when none; every listing: 0).
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class ReaderSafeStdout:
    """Delegates to the real stdout until a write meets a closed pipe; then writes nowhere."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner
        self._gone = False

    def _drop(self) -> None:
        self._gone = True
        try:  # later flushes (interpreter exit included) must not raise again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._inner.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def write(self, text: str) -> int:
        if self._gone:
            return len(text)
        try:
            return self._inner.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        if self._gone:
            return
        try:
            self._inner.flush()
        except BrokenPipeError:
            self._drop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install() -> None:
    """Wrap sys.stdout once (the CLI's entry point calls this)."""
    if not isinstance(sys.stdout, ReaderSafeStdout):
        sys.stdout = ReaderSafeStdout(sys.stdout)
