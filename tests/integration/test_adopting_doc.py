"""docs/adopting.md's runnable commands, run in order in one bash, as the guides' are.

The same machinery as tests/integration/test_doc_runner.py (```` ```console tested ```` blocks,
shown output checked line by line), on a fresh sample-league warehouse with a real Redis, a real
worker (given the example service's API key, as the page tells the reader) and the example
service the page starts. Run from the repository's root, as the page says.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.integration.doc_walk import NEEDS_WORKER, Terminal, _collapse, marked_steps, pattern
from tests.integration.engine_harness import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "adopting.md"


def test_the_adopting_page_runs_its_commands_and_prints_what_it_shows(tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    steps = marked_steps(PAGE)
    assert [s for s in steps if s.command.startswith("backfill sql examples/adopt/validation-queries.sql")]
    home = tmp_path / "home"
    warehouse = home / "warehouse.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKFILL_", "ADOPT_"))}
    env.update(BACKFILL_REDIS_URL=redis_server.url, BACKFILL_HOME=str(home), COLUMNS="200",
               BACKFILL_PIPELINE=str(REPO / "pipelines" / "nba"), BACKFILL_WAREHOUSE=f"duckdb:///{warehouse}",
               PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    key = next(m.group(1) for s in steps if (m := re.match(r"export ADOPT_API_KEY=(\S+)", s.command)))
    worker: Worker | None = None
    terminal = Terminal(REPO, env, tmp_path / "terminal")
    try:
        for step in steps:
            if worker is None and NEEDS_WORKER.search(step.command):
                worker = Worker(redis_server.url, warehouse, tmp_path / "worker", concurrency=2,
                                ADOPT_API_KEY=key).start()
            code, shown = terminal.run(step.command, timeout=300)
            where = f"{step.file}:{step.line}: {step.command}\n--- printed:\n{shown[-4000:]}"
            assert code == step.exit_code, where
            text = "\n".join(_collapse(line) for line in shown.splitlines())
            for expected in step.expected:
                assert re.search(pattern(expected), text), f"shown line not printed: {expected!r}\n{where}"
    finally:
        terminal.close()
        if worker is not None:
            worker.stop()
