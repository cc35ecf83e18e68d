"""The failure-recovery playbook followed on its own, from a fresh home directory: its set-up
block (```console tested setup```: the sample league and the execution guide's two runs of the
test week) makes the state its other blocks start from, then every command runs as written and
prints what the playbook shows. How a guide is walked: tests/integration/doc_walk.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.doc_walk import REPO, marked_steps, walk

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_playbook_runs_alone_from_a_fresh_home(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    steps = marked_steps(REPO / "docs" / "failure-recovery.md")
    assert steps and steps[0].setup and steps[0].command.startswith("backfill data sample"), \
        "the playbook's first block must make the state it starts from"
    walk(steps, tmp_path, redis_server.url)
