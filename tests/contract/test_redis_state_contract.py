"""The state contract against a real redis-server: the Lua steps as the engine runs them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from backfill.state import RedisStateStore
from tests.conftest import RedisServer

from .state_contract import Advance, StateContract


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the module (each test starts on an empty database)."""
    srv = RedisServer(tmp_path_factory.mktemp("redis-state"))
    srv.start()
    yield srv
    srv.stop()


class TestRedisStateContract(StateContract):
    @pytest.fixture
    def store(self, server: RedisServer) -> RedisStateStore:
        store = RedisStateStore.from_url(server.url)
        store.client.flushdb()
        return store

    @pytest.fixture
    def advance(self) -> Advance:
        return time.sleep  # keys expire in Redis's own time
