"""Live run state: the StateStore interface, its Redis implementation and an in-memory one for tests."""

from backfill.state.base import (
    Begin,
    BeginDecision,
    PauseKind,
    RunRecord,
    RunStatus,
    Settled,
    StateStore,
    TaskStatus,
)
from backfill.state.memory import MemoryStateStore
from backfill.state.redis import RedisStateStore

__all__ = ["Begin", "BeginDecision", "MemoryStateStore", "PauseKind", "RedisStateStore", "RunRecord", "RunStatus",
           "Settled", "StateStore", "TaskStatus"]
