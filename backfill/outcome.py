"""What a task can end as, and why: the one vocabulary from the executor to the run history.

`TaskOutcome` is what the executor returns, what run state records for a settled task (its
`TaskStatus` has the same values, plus `pending` and `running`), what a partition's state
says, what the run history stores and what alerts, `status` and `report` count. A `partial`
task is itself everywhere: written, short of what was expected, and (like a success) it
releases its dependents. `ErrorCategory` says why a date failed or is partial.

Both are `str` enums (rq's `JobStatus`), so they cross Redis, JSON and the warehouse as the
plain strings older runs wrote. Adding a category is one line here.
"""

from __future__ import annotations

from enum import StrEnum


class TaskOutcome(StrEnum):
    success = "success"
    partial = "partial"  # written, but less than expected (`ErrorCategory` and the date say what)
    failed = "failed"
    blocked = "blocked"  # not run: an upstream task failed
    revoked = "revoked"  # revoked through Celery (CLI, Flower, API); `retry` reruns it
    cancelled = "cancelled"
    skipped = "skipped"

    @property
    def wrote(self) -> bool:
        """The attempt wrote the partition's current rows (its dependents may read them)."""
        return self in (TaskOutcome.success, TaskOutcome.partial)

    @property
    def rank(self) -> int:
        """How bad, for the worst of several dates: success < partial < failed (others count as failed)."""
        return {TaskOutcome.success: 0, TaskOutcome.partial: 1}.get(self, 2)

    @classmethod
    def parse(cls, raw: object, default: TaskOutcome | None = None) -> TaskOutcome:
        """An outcome from stored data; an unknown value is `default` (or refused without one)."""
        try:
            return cls(str(raw))
        except ValueError:
            if default is None:
                raise
            return default


class ErrorCategory(StrEnum):
    quota = "quota"
    transient = "transient"
    dependency_gap = "dependency_gap"
    empty_output = "empty_output"
    duplicate_key = "duplicate_key"  # a written partition holds two rows with one declared key; never `success`
    schema_drift = "schema_drift"
    partial_data = "partial_data"
    registry_gap = "registry_gap"
    processor_error = "processor_error"
    critical = "critical"  # credentials, permissions, a missing dataset, configuration: fails every date alike
    revoked = "revoked"  # the run-history category of a revoked task (not an alert category)
    auth_config = "auth_config"  # the older name of `critical`, still raised by warehouse translations

    @property
    def wrote_rows(self) -> bool:
        """A failure in rows that were written (too few, or two with one key), not in running: a run
        whose only failures are of this kind ends `partial`, not `failed` (`backfill.state.verdict`)."""
        return self in (ErrorCategory.duplicate_key, ErrorCategory.partial_data)

    @classmethod
    def parse(cls, raw: object) -> ErrorCategory:
        """A category from stored or raised data: an older alias is mapped, an unknown name is `processor_error`."""
        name = str(raw or "")
        name = _ALIASES.get(name, name)
        try:
            return cls(name)
        except ValueError:
            return cls.processor_error


# Names older runs and translations used for `critical`.
_ALIASES = {"auth_config": "critical", "auth": "critical", "config": "critical", "permission": "critical"}
