"""The `acceptance:` vocabulary of a pipeline spec: what "backfill complete" means, as data.

Declared once per pipeline (defaults for every processor) and per processor (additions and
overrides), validated when the spec loads like `expect:` is, so a typo in a column name fails
at load time instead of silently checking nothing. Every criterion has a default, so a pipeline
that declares nothing still gets required columns non-NULL, exact expected row counts, a 100 %
success rate and a few spot checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_PIPELINE_KEYS = {"min_success_rate", "row_tolerance", "outlier_ratio", "spot_checks", "ranges", "coverage"}
_PROCESSOR_KEYS = {"min_success_rate", "row_tolerance", "ranges", "not_null"}


@dataclass(frozen=True)
class ColumnRange:
    """Values of `column` must lie in [low, high]; either bound may be open (None)."""

    column: str
    low: float | None
    high: float | None

    def describe(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{self.column} in [{lo}, {hi}]"


@dataclass(frozen=True)
class Coverage:
    """Every row of processor `of` (by `keys`) must have a row in processor `by`, bootstrap dates aside."""

    of: str
    by: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class ProcessorAcceptance:
    """One processor's criteria; None means "the pipeline's default"."""

    not_null: tuple[str, ...] = ()  # in addition to its required columns
    ranges: tuple[ColumnRange, ...] = ()  # added to (and overriding by column) the pipeline's ranges
    min_success_rate: float | None = None
    row_tolerance: float | None = None


@dataclass(frozen=True)
class PipelineAcceptance:
    """The pipeline's defaults and its cross-processor criteria.

    `row_tolerance`: a date is short when it has fewer than expected x (1 - tolerance) rows
    (0: exactly what `expect:` declares). `outlier_ratio`: a date is an outlier when its rows per
    game fall below this share of its season's median rows per game for that processor.
    """

    min_success_rate: float = 1.0
    row_tolerance: float = 0.0
    outlier_ratio: float = 0.5
    spot_checks: int = 3
    ranges: tuple[ColumnRange, ...] = ()
    coverage: tuple[Coverage, ...] = ()


@dataclass(frozen=True)
class Criteria:
    """The criteria that apply to one processor once pipeline defaults and its own entry are merged."""

    not_null: tuple[str, ...]
    ranges: tuple[ColumnRange, ...]
    min_success_rate: float
    row_tolerance: float


def effective(pipeline: PipelineAcceptance, own: ProcessorAcceptance, columns: tuple[str, ...],
              required: tuple[str, ...]) -> Criteria:
    """Merge: pipeline ranges apply to the processor's columns of that name; its own win by column."""
    ranges = {r.column: r for r in pipeline.ranges if r.column in columns}
    ranges.update({r.column: r for r in own.ranges})
    not_null = tuple(dict.fromkeys((*required, *own.not_null)))
    return Criteria(not_null, tuple(ranges[c] for c in sorted(ranges)),
                    pipeline.min_success_rate if own.min_success_rate is None else own.min_success_rate,
                    pipeline.row_tolerance if own.row_tolerance is None else own.row_tolerance)


# -- parsing (errors are ValueError; the spec loader adds the file, line and processor) ---------
def parse_processor_acceptance(raw: Any, columns: set[str]) -> ProcessorAcceptance:
    if raw is None:
        return ProcessorAcceptance()
    data = _mapping(raw, "acceptance", _PROCESSOR_KEYS)
    not_null = data.get("not_null") or []
    if not isinstance(not_null, list) or not all(isinstance(c, str) for c in not_null):
        raise ValueError(f"acceptance.not_null must be a list of column names, got {not_null!r}")
    for c in not_null:
        _known_column(c, columns, "acceptance.not_null")
    ranges = _ranges(data.get("ranges"), "acceptance.ranges")
    for r in ranges:
        _known_column(r.column, columns, "acceptance.ranges")
    return ProcessorAcceptance(tuple(not_null), ranges, _rate(data, "min_success_rate"),
                               _rate(data, "row_tolerance"))


def parse_pipeline_acceptance(raw: Any, processors: Mapping[str, set[str]]) -> PipelineAcceptance:
    """`processors`: name -> its column names (to check ranges and coverage keys)."""
    if raw is None:
        return PipelineAcceptance()
    data = _mapping(raw, "acceptance", _PIPELINE_KEYS)
    ranges = _ranges(data.get("ranges"), "acceptance.ranges")
    every = set().union(*processors.values()) if processors else set()
    for r in ranges:
        if r.column not in every:
            raise ValueError(f"acceptance.ranges names {r.column!r}, which is no processor's column")
    spot = data.get("spot_checks", 3)
    if isinstance(spot, bool) or not isinstance(spot, int) or spot < 0:
        raise ValueError(f"acceptance.spot_checks must be a whole number >= 0, got {spot!r}")
    ratio = data.get("outlier_ratio", 0.5)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
        raise ValueError(f"acceptance.outlier_ratio must be a number from 0 to 1, got {ratio!r}")
    coverage = []
    for entry in data.get("coverage") or []:
        if not isinstance(entry, Mapping) or set(entry) != {"of", "by", "keys"}:
            raise ValueError(f"acceptance.coverage entry {entry!r} needs exactly `of:`, `by:` and `keys:`")
        of, by, keys = entry["of"], entry["by"], entry["keys"]
        for name in (of, by):
            if name not in processors:
                raise ValueError(f"acceptance.coverage names unknown processor {name!r}")
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise ValueError(f"acceptance.coverage keys must be a non-empty list of column names, got {keys!r}")
        for k in keys:
            for name in (of, by):
                if processors[name] and k not in processors[name]:
                    raise ValueError(f"acceptance.coverage key {k!r} is not a column of {name}")
        coverage.append(Coverage(str(of), str(by), tuple(keys)))
    return PipelineAcceptance(min_success_rate=_rate(data, "min_success_rate", 1.0) or 0.0,
                              row_tolerance=_rate(data, "row_tolerance", 0.0) or 0.0,
                              outlier_ratio=float(ratio), spot_checks=spot, ranges=ranges, coverage=tuple(coverage))


def _mapping(raw: Any, what: str, known: set[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{what} must be a mapping of {', '.join(sorted(known))}, got {raw!r}")
    unknown = sorted(str(k) for k in set(raw) - known)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return raw


def _rate(data: Mapping[str, Any], key: str, default: float | None = None) -> float | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"acceptance.{key} must be a number from 0 to 1, got {value!r}")
    return float(value)


def _ranges(raw: Any, what: str) -> tuple[ColumnRange, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ValueError(f"{what} must map column names to [low, high], got {raw!r}")
    out = []
    for col, bounds in raw.items():
        if not isinstance(bounds, list) or len(bounds) != 2 or not all(
                b is None or (isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b))
                for b in bounds):
            raise ValueError(f"{what}.{col} must be [low, high] (numbers, or null for no bound), got {bounds!r}")
        low, high = bounds
        if low is not None and high is not None and low > high:
            raise ValueError(f"{what}.{col}: low {low} is above high {high}")
        out.append(ColumnRange(str(col), None if low is None else float(low), None if high is None else float(high)))
    return tuple(out)


def _known_column(column: str, columns: set[str], what: str) -> None:
    if columns and column not in columns:
        raise ValueError(f"{what} names {column!r}, which is not one of its columns")
