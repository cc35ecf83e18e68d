"""The monitoring guide followed on its own, from a fresh home directory: its set-up block
(```console tested setup```: the sample league, Phase 3 from the season start to the week before)
makes the state its other blocks start from, then every command runs as written and prints what
the guide shows (the counts too: the same as after the other guides in test_doc_runner.py). How a
guide is walked: tests/integration/doc_walk.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.doc_walk import REPO, Step, marked_steps, walk

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_monitoring_guide_runs_alone_from_a_fresh_home(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    steps = marked_steps(REPO / "docs" / "monitoring.md")
    assert steps and steps[0].setup and steps[0].command.startswith("backfill data sample"), \
        "the monitoring guide's first block must make the state it starts from"

    def succeeded(step: Step, shown: str) -> None:
        if step.command.startswith("backfill status"):
            assert " succeeded - " in shown or '"status": "succeeded"' in shown, shown[-3000:]

    walk(steps, tmp_path, redis_server.url, after=succeeded)
