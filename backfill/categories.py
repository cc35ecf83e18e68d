"""The one classification of what went wrong on a date: the category the executor stamps on every
failed or partial date, which run history, `status`, `backfill digest` and the alert sinks all read.

Core, so the executor classifies without importing the alerts package; what an alert does with
each category (sent at once, held for the digest) is `backfill.alerts.categories`.
`auth_config` is the name older runs and the BigQuery error translation use for `critical`;
`category_of` maps it, so history written before the rename reads the same.
"""

from __future__ import annotations

import re

from backfill.outcome import ErrorCategory

CRITICAL = ErrorCategory.critical
# What an alert can say a date failed or is partial for (`revoked` and the old `auth_config` are not).
CATEGORIES = tuple(c for c in ErrorCategory if c not in (ErrorCategory.revoked, ErrorCategory.auth_config))
# A warehouse error that says nobody may or can do this, whatever the date: configuration, not data.
_CRITICAL_MESSAGE = re.compile(
    r"access denied|permission denied|permission [\w.]+ denied|forbidden|\b403\b|\b401\b|unauthori[sz]ed|"
    r"invalid credentials|could not load the default credentials|dataset [\w.:-]+ (?:was )?not found|"
    r"not found: dataset|schema with name \S+ does not exist", re.IGNORECASE)


def category_of(raw: str | None, message: str | None = None) -> ErrorCategory:
    """The canonical category of a raw one (and its message): unknown names are `processor_error`.

    A `processor_error` whose message says access was denied or a dataset is missing is
    `critical`: retrying the next date cannot help, and it must not wait for a digest.
    """
    name = ErrorCategory.parse(raw)  # older aliases (`auth_config` ...) are mapped there
    if name not in CATEGORIES:
        name = ErrorCategory.processor_error
    if name is ErrorCategory.processor_error and message and _CRITICAL_MESSAGE.search(message):
        return CRITICAL
    return name


def is_critical(category: str | None) -> bool:
    return category_of(category) == CRITICAL
