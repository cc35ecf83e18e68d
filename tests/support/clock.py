"""A clock a test moves by hand, for the in-memory state store (and the engine under test)."""

from __future__ import annotations

from backfill.state.base import now


class ManualClock:
    """Seconds since the epoch, standing still until `advance` moves it: leases expire and runs
    stall when the test says so, not after a sleep. Starts at the real time, so stamps look real."""

    def __init__(self, start: float | None = None) -> None:
        self.time = now() if start is None else start

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds
