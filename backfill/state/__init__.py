"""Live run state: the StateStore interface and its Redis implementation."""

from backfill.state.base import Begin, BeginDecision, RunRecord, RunStatus, Settled, StateStore, TaskStatus
from backfill.state.redis import RedisStateStore

__all__ = ["Begin", "BeginDecision", "RedisStateStore", "RunRecord", "RunStatus", "Settled", "StateStore", "TaskStatus"]
