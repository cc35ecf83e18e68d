"""The state contract against the in-memory store, time moved by hand."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from backfill.state import MemoryStateStore, StateStore
from tests.support.clock import ManualClock

from .state_contract import Advance, StateContract


class TestMemoryStateContract(StateContract):
    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock()

    @pytest.fixture
    def store(self, clock: ManualClock) -> MemoryStateStore:
        return MemoryStateStore(clock)

    @pytest.fixture
    def advance(self, clock: ManualClock) -> Advance:
        return clock.advance


def test_the_contract_calls_every_method_of_the_interface() -> None:
    """A method added to StateStore without a contract test would let the two stores drift apart."""
    source = (Path(__file__).parent / "state_contract.py").read_text()
    methods = [name for name, f in inspect.getmembers(StateStore, inspect.isfunction)
               if getattr(f, "__isabstractmethod__", False)]
    assert len(methods) > 30
    assert [m for m in methods if f".{m}(" not in source] == []
