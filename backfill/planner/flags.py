"""A selection written back as the CLI flags that select it again.

Every command a hint prints (a run's selection in `report`, a stored request in `status`, the
refill commands of `gaps` and `validate`) builds its flags here, so `--pipeline` quoting and the
flags' order are the same everywhere and a pasted hint parses as the CLI expects.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Iterable, Sequence


def _day(value: dt.date | str) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def selection_flags(ranges: Iterable[Sequence[dt.date | str]], *, processors: Sequence[str] = (),
                    phases: Iterable[int] = (), seasons: Iterable[str] = (), season_types: Iterable[str] = (),
                    pipeline: str | None = None) -> str:
    """`--pipeline P --range A:B ... --processors a,b | --phases 3,4 --seasons S --season-types T`;
    processors win over phases (they are the narrower choice); empty parts are left out."""
    parts = [f"--pipeline {shlex.quote(pipeline)}"] if pipeline else []
    parts += [f"--range {_day(a)}:{_day(b)}" for a, b in ranges]
    if processors:
        parts.append("--processors " + ",".join(processors))
    elif phase_list := sorted(set(phases)):
        parts.append("--phases " + ",".join(str(p) for p in phase_list))
    for flag, values in (("--seasons", seasons), ("--season-types", season_types)):
        if chosen := sorted(values):
            parts.append(f"{flag} " + ",".join(chosen))
    return " ".join(parts)
