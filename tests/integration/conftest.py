"""Fixtures for the integration suites (real redis-server, real Celery workers, real DuckDB files)."""

from tests.integration.engine_harness import env, league_template  # noqa: F401
