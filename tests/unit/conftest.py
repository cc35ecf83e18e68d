"""Fixtures of the unit tests: a clock the test moves by hand."""

from __future__ import annotations

import sys

import pytest

from backfill.state.base import now
from tests.support.clock import ManualClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """One clock for the in-memory store and the engine: every module of backfill or workers that
    imported `now` reads this clock instead, so a lease expires or a run stalls when the test says."""
    manual = ManualClock()
    for name, module in list(sys.modules.items()):
        if name.startswith(("backfill.", "workers.")) and getattr(module, "now", None) is now:
            monkeypatch.setattr(module, "now", manual)
    return manual
