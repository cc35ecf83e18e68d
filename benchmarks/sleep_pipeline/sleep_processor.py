"""The sleeping processor of the benchmark pipeline: a BigQuery-like job without BigQuery.

A job costs `fixed + dates * per_date` seconds of its processor (the simulation's costs, scaled,
read from the JSON file named by the run option `costs_file`), then writes one row per date
through `ctx.replace_rows`, so the executor's outcome checks find what a real job would leave.
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any


@cache
def costs(path: str) -> dict[str, tuple[float, float]]:
    """processor -> (fixed seconds, seconds per date); read once per worker process."""
    with open(path, encoding="utf-8") as f:
        return {name: (float(fixed), float(per_date)) for name, (fixed, per_date) in json.load(f).items()}


def work(ctx: Any) -> int:
    fixed, per_date = costs(str(ctx.options["costs_file"]))[ctx.processor]
    time.sleep(fixed + per_date * len(ctx.dates))
    return int(ctx.replace_rows([{"game_date": d, "task_dates": len(ctx.dates)} for d in ctx.dates]))
