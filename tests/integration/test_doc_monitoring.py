"""The monitoring guide followed on its own, from a fresh home directory holding only the sample
league (as its text says): every command runs as written and its runs end `succeeded`. Its shown
counts are those of the walk after the other guides (test_doc_runner.py): from a fresh home
`--with-upstream` plans the season start too, so only exit codes are checked here. How a guide is
walked: tests/integration/doc_walk.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.doc_walk import REPO, Step, marked_steps, walk

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_monitoring_guide_runs_alone_from_a_fresh_home(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    sample = Step("docs/monitoring.md", 0, "backfill data sample --seasons 2023-24")

    def succeeded(step: Step, shown: str) -> None:
        if step.command.startswith("backfill status"):
            assert " succeeded - " in shown or '"status": "succeeded"' in shown, shown[-3000:]

    walk([sample, *marked_steps(REPO / "docs" / "monitoring.md")], tmp_path, redis_server.url,
         check_output=False, after=succeeded)
