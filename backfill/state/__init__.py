"""Live run state: the StateStore interface and its Redis implementation."""

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
from backfill.state.redis import RedisStateStore

__all__ = ["Begin", "BeginDecision", "PauseKind", "RedisStateStore", "RunRecord", "RunStatus", "Settled", "StateStore",
           "TaskStatus"]
