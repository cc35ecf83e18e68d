"""A digest: a run's (or a season's) issues grouped per (category, processor), as plain data.

Pure: `build_digest` turns issues into groups with counts, first and last date, the affected
dates as runs of consecutive *game* dates (the run's own task dates are the game dates, so an
off-day or the All-Star break never splits a run of failures), and a few example messages.
The same function makes what the sinks send and what `backfill digest` prints, so the two
cannot disagree; `fingerprint` is what tells an unchanged digest from a changed one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from backfill.alerts.categories import CATEGORIES, Issue
from backfill.outcome import TaskOutcome

MAX_EXAMPLES = 3
_ORDER: dict[str, int] = {c: i for i, c in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class Group:
    category: str
    processor: str
    count: int  # affected dates
    failed: int
    partial: int
    blocked: int
    first: str
    last: str
    runs: list[tuple[str, str]]  # [first, last] of each run of consecutive game dates
    examples: list[str] = field(default_factory=list)

    def runs_text(self, limit: int = 8) -> str:
        parts = [a if a == b else f"{a}..{b}" for a, b in self.runs[:limit]]
        more = f" (+{len(self.runs) - limit} more)" if len(self.runs) > limit else ""
        return ", ".join(parts) + more


@dataclass(frozen=True)
class Digest:
    run_id: str
    kind: str  # season | final | update | current (what `backfill digest` shows)
    season: str | None  # None: the whole run
    groups: list[Group]
    seasons: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def title(self) -> str:
        scope = f"season {self.season}" if self.season else "run"
        label = {"season": "season digest", "final": "final digest", "update": "update digest",
                 "current": "digest so far"}.get(self.kind, self.kind)
        return f"backfill {self.run_id}: {label} ({scope}): {self.total} issue(s) in {len(self.groups)} group(s)"

    def fingerprint(self) -> str:
        """Equal for two digests listing the same problems on the same dates, whatever their kind."""
        body = [[g.category, g.processor, g.failed, g.partial, g.blocked, g.runs] for g in self.groups]
        return hashlib.sha256(json.dumps([self.season, body]).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "kind": self.kind, "season": self.season, "seasons": self.seasons,
                "total": self.total, "fingerprint": self.fingerprint(),
                "groups": [{**asdict(g), "runs": [list(r) for r in g.runs]} for g in self.groups]}


def date_runs(dates: Iterable[str], universe: Sequence[str]) -> list[tuple[str, str]]:
    """Maximal runs of `dates` that are consecutive in `universe` (the sorted game dates)."""
    index = {d: i for i, d in enumerate(universe)}
    out: list[list[str]] = []
    last = -2
    for d in sorted(set(dates)):
        i = index.get(d)
        if i is not None and out and i == last + 1:
            out[-1][1] = d
        else:
            out.append([d, d])
        last = i if i is not None else -2
    return [(a, b) for a, b in out]


def build_digest(run_id: str, kind: str, season: str | None, issues: Iterable[Issue],
                 game_dates: Mapping[str, Sequence[str]], seasons: Sequence[str] = ()) -> Digest:
    """Group issues per (category, processor); one date counts once per group (its worst status)."""
    by_group: dict[tuple[str, str], dict[str, Issue]] = {}
    rank: dict[str, int] = {TaskOutcome.partial: 0, TaskOutcome.blocked: 1, TaskOutcome.failed: 2}
    for issue in issues:
        dates = by_group.setdefault((issue.category, issue.processor), {})
        old = dates.get(issue.date)
        if old is None or rank.get(issue.status, 0) > rank.get(old.status, 0):
            dates[issue.date] = issue
    groups = []
    for (category, processor), dates in by_group.items():
        ordered = [dates[d] for d in sorted(dates)]
        examples: list[str] = []
        for i in ordered:
            text = f"{i.date}: {i.message}"
            if i.message and i.message not in {e.split(": ", 1)[-1] for e in examples}:
                examples.append(text)
            if len(examples) >= MAX_EXAMPLES:
                break
        universe = sorted(game_dates.get(processor) or sorted(dates))
        groups.append(Group(category, processor, len(ordered),
                            sum(1 for i in ordered if i.status == TaskOutcome.failed),
                            sum(1 for i in ordered if i.status == TaskOutcome.partial),
                            sum(1 for i in ordered if i.status == TaskOutcome.blocked),
                            ordered[0].date, ordered[-1].date, date_runs(dates, universe), examples))
    groups.sort(key=lambda g: (-(g.failed + g.blocked), _ORDER.get(g.category, 99), g.processor))
    return Digest(run_id, kind, season, groups, sorted(seasons, reverse=True))
