"""The load test_throttle puts on one throttle from worker processes and threads alike.

Each worker takes a slot 15 times and, inside it, counts how many are inside at once (Redis keys
`active`, and `seen` for every count). Run as a process: `python -m tests.support.throttle_load URL K`.
"""

from __future__ import annotations

import sys
import time

import redis

from backfill.throttle import Throttle


def hold_slots(throttle: Throttle, counter: redis.Redis, name: str, times: int = 15) -> None:
    for i in range(times):
        with throttle.slot(f"{name}-{i}", timeout=60):
            n = counter.incr("active")
            counter.rpush("seen", n)
            time.sleep(0.01)
            counter.decr("active")


if __name__ == "__main__":
    client = redis.Redis.from_url(sys.argv[1])
    hold_slots(Throttle(client, initial_limit=3), client, f"p{sys.argv[2]}")
