"""The one classification of everything a task can report, and what an alert does with each kind.

The executor stamps a category on every failed or partial date; run history, `status`,
`backfill digest` and the sinks all read that same string. Categories differ in what a
human should do, and so in how loudly they are sent:

- `critical` (credentials, permissions, a missing dataset, configuration) fails every task of
  its kind until someone acts, so it is sent at once even in digest mode, once per cause;
- `registry_gap` and `partial_data` are expected during a historical backfill (players the
  registry never knew, raw feeds with holes): they are listed in digests, never sent alone;
- everything else waits for the season's digest (or goes out one by one in `immediate` mode).

The categories themselves and `category_of` are core (`backfill.categories`, where the executor
reads them); they are re-exported here for the alerts code that reads them with the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backfill.categories import ALIASES, CATEGORIES, CRITICAL, category_of, is_critical

__all__ = ["ALIASES", "CATEGORIES", "CRITICAL", "DIGEST_ONLY", "Issue", "category_of", "cause_key", "first_line",
           "is_critical", "issues_of"]

DIGEST_ONLY = frozenset({"registry_gap", "partial_data"})
_CAUSE_NOISE = re.compile(r"\d{4}-\d{2}-\d{2}|\b\d+\b|'[^']*'|\"[^\"]*\"")


def cause_key(processor: str, category: str, message: str) -> str:
    """What makes two critical failures 'the same cause': the processor, the category and the
    message with its dates, numbers and quoted names blanked (one denied table, 200 dates)."""
    first = (message.strip().splitlines() or [""])[0]
    return f"{processor}|{category}|{_CAUSE_NOISE.sub('_', first)[:300]}"


@dataclass(frozen=True)
class Issue:
    """One problem on one date of one processor: the unit a digest counts.

    `status` is what the date ended as: `failed`, `partial` (written, with a warning) or
    `blocked` (not run because an upstream task failed).
    """

    category: str
    processor: str
    date: str
    status: str
    message: str

    def to_json(self) -> list[str]:
        return [self.category, self.processor, self.date, self.status, self.message]

    @classmethod
    def from_json(cls, data: list[str]) -> Issue:
        return cls(*data)


def first_line(message: str | None, limit: int = 300) -> str:
    return (str(message or "").strip().splitlines() or [""])[0][:limit]


def issues_of(result: Mapping[str, Any]) -> list[Issue]:
    """Every issue in a task's result (a `TaskResult.to_json()`): its failed and partial dates, and
    its registry gaps (a warning on a date that otherwise succeeded)."""
    processor = str(result.get("processor") or "unknown")
    dates = [str(d) for d in result.get("dates") or []]
    status = str(result.get("status") or "success")
    by_date: Mapping[str, str] = result.get("status_by_date") or {}
    issues_by_date: Mapping[str, list[str]] = result.get("issues_by_date") or {}
    out: list[Issue] = []
    for d in dates:
        st = str(by_date.get(d, status))
        if st not in ("failed", "partial"):
            continue
        raw = issues_by_date.get(d)
        category, message = (raw[0], raw[1]) if raw else (result.get("error_category"), result.get("error_message"))
        out.append(Issue(category_of(category, message), processor, d, st, first_line(message)))
    if int(result.get("unresolved_players") or 0) > 0:
        note = next((w for w in result.get("warnings") or [] if "registry" in str(w)),
                    f"{result['unresolved_players']} name(s) did not resolve through the registry")
        out += [Issue("registry_gap", processor, d, "partial", first_line(note)) for d in dates
                if str(by_date.get(d, status)) != "failed"]
    return out
