"""The one classification of what went wrong on a date: the category the executor stamps on every
failed or partial date, which run history, `status`, `backfill digest` and the alert sinks all read.

Core, so the executor classifies without importing the alerts package; what an alert does with
each category (sent at once, held for the digest) is `backfill.alerts.categories`.
`auth_config` is the name older runs and the BigQuery error translation use for `critical`;
`category_of` maps it, so history written before the rename reads the same.
"""

from __future__ import annotations

import re

CRITICAL = "critical"
# `duplicate_key`: a written partition holds two rows with one declared key; never `success`.
CATEGORIES = ("quota", "transient", "dependency_gap", "empty_output", "duplicate_key", "schema_drift",
              "partial_data", "registry_gap", "processor_error", CRITICAL)
ALIASES = {"auth_config": CRITICAL, "auth": CRITICAL, "config": CRITICAL, "permission": CRITICAL}
# A warehouse error that says nobody may or can do this, whatever the date: configuration, not data.
_CRITICAL_MESSAGE = re.compile(
    r"access denied|permission denied|permission [\w.]+ denied|forbidden|\b403\b|\b401\b|unauthori[sz]ed|"
    r"invalid credentials|could not load the default credentials|dataset [\w.:-]+ (?:was )?not found|"
    r"not found: dataset|schema with name \S+ does not exist", re.IGNORECASE)


def category_of(raw: str | None, message: str | None = None) -> str:
    """The canonical category of a raw one (and its message): unknown names are `processor_error`.

    A `processor_error` whose message says access was denied or a dataset is missing is
    `critical`: retrying the next date cannot help, and it must not wait for a digest.
    """
    name = ALIASES.get(raw or "", raw or "processor_error")
    if name not in CATEGORIES:
        name = "processor_error"
    if name == "processor_error" and message and _CRITICAL_MESSAGE.search(message):
        return CRITICAL
    return name


def is_critical(category: str | None) -> bool:
    return category_of(category) == CRITICAL
