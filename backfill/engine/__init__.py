"""The orchestration logic of a run, free of Celery, in one module per concern.

- `lifecycle`: start, settle, pump and send, finish, cancel, retry, resume; locks, trigger
  pauses and priorities.
- `watchdog`: re-send tasks whose lease expired, heal stalled runs, finish what is done.
- `progress`: counts, rate and ETA, partial tasks, stall detection, derived on every call.
- `history`: the run-history rows of settled tasks and their bulk flush.
- `ledger`: the durable copy of each run's request (what `resume` rebuilds from).
- `events`: what the engine tells its observers (task settled, season complete, run
  finished, stalled, retry); alerts and the history flusher listen, the engine imports neither.

Callers use `from backfill import engine` and `engine.start_run(...)`; the names below are
the engine's public surface, whichever module holds them.
"""

from backfill.engine.events import (
    EngineObserver,
    Observers,
    RetryStarted,
    RunFinished,
    RunStalled,
    SeasonComplete,
    TaskSettled,
    WarehouseSource,
)
from backfill.engine.history import (
    FLUSH_LOCK_SECONDS,
    SETTLED_KINDS,
    HistoryFlusher,
    flush_history,
    history_rows_for,
    record_finished,
)
from backfill.engine.ledger import ledger_table, load_request, record_request
from backfill.engine.lifecycle import (
    TRIGGER_TTL_SECONDS,
    Dispatcher,
    TriggerPauser,
    blocks_dependents,
    cancel,
    dependents,
    finish,
    new_run_id,
    priority,
    resume,
    retry,
    season_priorities,
    send,
    settle,
    start_run,
    task_keys,
    trigger_names,
)
from backfill.engine.progress import partial_tasks, progress, stall
from backfill.engine.watchdog import heal, reap, sweep

__all__ = [
    "FLUSH_LOCK_SECONDS", "SETTLED_KINDS", "TRIGGER_TTL_SECONDS", "Dispatcher", "EngineObserver", "HistoryFlusher",
    "Observers", "RetryStarted", "RunFinished", "RunStalled", "SeasonComplete", "TaskSettled", "TriggerPauser",
    "WarehouseSource",
    "blocks_dependents", "cancel", "dependents", "finish", "flush_history", "heal", "history_rows_for",
    "ledger_table", "load_request", "new_run_id", "partial_tasks", "priority", "progress", "reap",
    "record_finished", "record_request", "resume", "retry", "season_priorities", "send", "settle", "stall",
    "start_run", "sweep", "task_keys", "trigger_names",
]
