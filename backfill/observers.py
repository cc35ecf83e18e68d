"""The engine's listeners, wired once where the engine is: in a worker's context and in the CLI session.

The engine emits events and imports none of these; this is the one place that says who
listens. Alerts come first (a task's issues are recorded before anything else looks), then
the run-history flusher. Sentry is reached as one of the alert sinks, as the run's alert
mode allows, not as a listener of its own: that would send every failure twice.
"""

from __future__ import annotations

from backfill.alerts.notify import AlertObserver
from backfill.engine import HistoryFlusher, Observers
from backfill.settings import Settings
from backfill.state import RedisStateStore


def standard_observers(store: RedisStateStore, settings: Settings) -> Observers:
    """Alerts (digests, critical and immediate alerts, retry marks), then the history flusher."""
    return Observers([AlertObserver(store, settings), HistoryFlusher(settings)])
