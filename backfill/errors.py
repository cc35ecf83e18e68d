"""One exception root for everything a user can hit; each class knows its CLI exit code.

Exit codes (documented in README.md and docs/cli.md):
  0  ok
  1  problems found (failed tasks, gaps, validation failures)
  2  bad input (flags, spec files, ranges) -- nothing was changed
  3  cannot connect (Redis, warehouse, broker)
"""

from __future__ import annotations

from backfill.outcome import ErrorCategory


class BackfillError(Exception):
    """Root of every error the CLI turns into one line and an exit code."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ProblemsFound(BackfillError):
    """The command ran, and what it found is not clean (failures, gaps, failed checks)."""

    exit_code = 1


class BadInput(BackfillError):
    """A flag, a file or a request is wrong; nothing was changed."""

    exit_code = 2


class SpecError(BadInput):
    """A pipeline spec is invalid; the message names the file and the processor."""


class PlanError(BadInput):
    """A plan request cannot be satisfied (bad range, unknown processor or season)."""


class RunConflict(BadInput):
    """Another run already holds a lock on a partition this run would write."""


class CannotConnect(BackfillError):
    """Redis, the broker or the warehouse did not answer."""

    exit_code = 3


class WarehouseUnreadable(CannotConnect):
    """A DuckDB warehouse file exists but did not open, named as what it is: `locked` (another process
    holds it), `permission` (the user may not read or write it or its folder), `damaged` (not a DuckDB
    file, cut short, or written by another DuckDB version). The message names the path; the hint
    says the next step."""

    LOCKED = "locked"
    PERMISSION = "permission"
    DAMAGED = "damaged"
    OTHER = "other"

    def __init__(self, message: str, *, reason: str, path: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
        self.path = path


class WarehouseError(BackfillError):
    """A warehouse call failed; `category` says how the engine should treat it."""

    exit_code = 1

    def __init__(self, message: str, *, category: str = ErrorCategory.processor_error, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.category = category


class TransientWarehouseError(WarehouseError):
    """Worth retrying with backoff: quota, rate limit, 5xx, timeouts."""

    def __init__(self, message: str, *, category: str = ErrorCategory.transient, hint: str | None = None) -> None:
        super().__init__(message, category=category, hint=hint)


class QuotaExceeded(TransientWarehouseError):
    """The warehouse refused work for quota or rate reasons; the throttle backs off on this."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, category=ErrorCategory.quota, hint=hint)


class MissingExtra(BadInput):
    """An optional dependency is needed; the hint names the pip extra."""
