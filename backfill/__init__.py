"""backfill: dependency-safe, resumable backfills of date-partitioned warehouse pipelines."""

__version__ = "0.1.0"
