"""Live run state: the StateStore interface and its Redis implementation."""

from backfill.state.base import BeginDecision, RunRecord, RunStatus, StateStore, TaskStatus
from backfill.state.redis import RedisStateStore

__all__ = ["BeginDecision", "RedisStateStore", "RunRecord", "RunStatus", "StateStore", "TaskStatus"]
