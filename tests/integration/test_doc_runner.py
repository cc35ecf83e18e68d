"""The guides' runnable commands, run in order in one bash, as a newcomer pastes them into a terminal.

The blocks of docs/execution-guide.md, docs/failure-recovery.md, docs/monitoring.md,
docs/troubleshooting.md and docs/decisions.md run in that order against one fresh home (how a
block is read and run: tests/integration/doc_walk.py). The playbook and the monitoring guide
also run alone, each from a fresh home of its own (test_doc_playbook.py, test_doc_monitoring.py):
their first block, fenced ```` ```console tested setup ````, creates the state they start from.
This walk leaves those set-up blocks out (the guides before them made that state; loading the
sample league again and re-running their runs would only add runs), so each guide's shown output
is checked both after the guides before it and from a fresh home.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.doc_walk import ALL_GUIDES, _collapse, pattern, steps_of, walk

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STEPS = steps_of(*ALL_GUIDES)


def test_the_guides_mark_a_runnable_path_from_nothing_to_a_reported_test_run() -> None:
    for guide in ALL_GUIDES:
        assert any(s.file == guide for s in STEPS), f"{guide} has no ```console tested``` block"
    commands = [s.command for s in STEPS]
    assert commands and commands[0].startswith("backfill data sample")
    for needed in ("backfill plan", "backfill enqueue", "backfill gaps", "backfill validate", "backfill report"):
        assert any(c.startswith(needed) for c in commands), needed
    assert sum(len(s.expected) for s in STEPS) >= 10, "the shown output must be checked, not only exit codes"
    assert not any(s.setup for s in STEPS), "set-up blocks run only when their guide is walked alone"


def test_the_output_patterns_wildcard_only_what_varies() -> None:
    rx = pattern("run bf-20261129-133023-c8c589: succeeded - 5 succeeded of 5 in 8s; 39 tasks/min")
    assert re.search(rx, _collapse("run bf-20270101-000000-abcdef: succeeded - 5 succeeded of 5 in 1m02s; 7 tasks/min"))
    assert not re.search(rx, _collapse("run bf-20270101-000000-abcdef: failed - 5 succeeded of 5 in 8s; 7 tasks/min"))
    assert not re.search(pattern("Gaps: 0 of 70 partitions"), "Gaps: 3 of 70 partitions")
    rx = pattern("paused phase3->phase4 as cli:you@host until 2026-11-29T16:07:19+00:00 (renew")
    assert re.search(rx, "paused phase3->phase4 as cli:ops@db-2.lan until 2027-01-01T00:00:00+00:00 (renew by ...")
    assert not re.search(rx, "paused phase4->phase5 as cli:ops@db-2.lan until 2027-01-01T00:00:00+00:00 (renew by ...")


def test_the_guides_commands_run_in_order_and_print_what_they_show(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    walk(STEPS, tmp_path, redis_server.url)
