"""Python and HTTP processors run with the same guarantees as SQL ones (examples/byo)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from backfill.calendar import Calendar
from backfill.executor import TaskResult, execute_task
from backfill.planner import PlanRequest, build_plan
from backfill.planner.model import Task
from backfill.spec import PipelineSpec, load_spec
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import free_port, require_nba_data
from tests.integration.engine_harness import table_checksums
from tests.support.examples import example_module
from tests.support.history import rows_of

REPO = Path(__file__).resolve().parents[2]
BYO = REPO / "examples" / "byo"
sys.path.insert(0, str(BYO))
_service = example_module(BYO / "service.py", "byo_service")
Service, serve = _service.Service, _service.serve

pytestmark = pytest.mark.integration
WEEK = (dt.date(2023, 11, 1), dt.date(2023, 11, 7))


def byo_spec(port: int | None = None, tmp: Path | None = None) -> PipelineSpec:
    if port is None:
        return load_spec(BYO)
    assert tmp is not None
    text = (BYO / "pipeline.yaml").read_text().replace("127.0.0.1:8765", f"127.0.0.1:{port}")
    (tmp / "byo" / "sql").mkdir(parents=True, exist_ok=True)
    sql = "team_offense_game_summary.sql"
    (tmp / "byo" / "sql" / sql).write_text((REPO / "pipelines" / "nba" / "sql" / sql).read_text())
    (tmp / "byo" / "pipeline.yaml").write_text(text)
    (tmp / "byo" / "processors.py").write_text((BYO / "processors.py").read_text())
    return load_spec(tmp / "byo")


def tasks(spec: PipelineSpec, w: DuckDBWarehouse, span: tuple[dt.date, dt.date], processor: str) -> list[Task]:
    plan = build_plan(spec, Calendar.from_warehouse(w, spec.schedule_table),
                      PlanRequest(ranges=(span,), processors=frozenset({processor}), batch_sizes={processor: 1}))
    return list(plan.tasks())


@contextmanager
def served(service: Service) -> Iterator[int]:
    """`service` answering on a free local port for the block; the port."""
    port = free_port()
    server = serve(service, port)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def league(tmp_path: Path, league_template: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    path.write_bytes(league_template.read_bytes())
    return path


def test_python_processor_equals_the_sql_one_over_a_real_month(tmp_path: Path) -> None:
    from pipelines.nba.importer import import_nba

    data = require_nba_data("player_logs/player_logs_2023-24.csv")
    subset = tmp_path / "data" / "player_logs"
    subset.mkdir(parents=True)
    (subset / "player_logs_2023-24.csv").symlink_to(data / "player_logs" / "player_logs_2023-24.csv")
    path = tmp_path / "real.duckdb"
    spec = byo_spec()
    month = (dt.date(2023, 11, 1), dt.date(2023, 11, 30))
    with DuckDBWarehouse(path) as w:
        import_nba(w, tmp_path / "data")
        for name in ("team_offense_sql", "team_offense_python"):
            results = [execute_task(t, w, spec) for t in tasks(spec, w, month, name)]
            assert [r.status for r in results] == ["success"] * len(results), [r.error_message for r in results]
            assert len(results) == len(Calendar.from_warehouse(w, "nba_raw.schedule").game_dates_between(*month))
    sums = table_checksums(path, ["byo_sql.team_offense", "byo_python.team_offense"])
    assert sums["byo_sql.team_offense"][0] > 400
    assert sums["byo_sql.team_offense"] == sums["byo_python.team_offense"]


def run_python_processor(league: Path, tmp_path: Path, code: str) -> TaskResult:
    """Run the first week task of `team_offense_python` with `code` as its processors.py."""
    from backfill.processors.python import load_function

    spec = byo_spec(free_port(), tmp_path)
    (tmp_path / "byo" / "processors.py").write_text(code)
    sys.modules.pop("processors", None)
    load_function.cache_clear()
    try:
        with DuckDBWarehouse(league) as w:
            return execute_task(tasks(spec, w, WEEK, "team_offense_python")[0], w, spec)
    finally:
        load_function.cache_clear()
        sys.modules.pop("processors", None)


def test_python_processor_that_writes_nothing_on_a_game_date_is_not_success(league: Path, tmp_path: Path) -> None:
    r = run_python_processor(league, tmp_path, "def team_offense(ctx):\n    return ctx.replace_rows([])\n")
    assert (r.status, r.error_category, r.rows) == ("failed", "empty_output", 0)


def test_python_processor_exception_is_a_final_processor_error_per_date(league: Path, tmp_path: Path) -> None:
    r = run_python_processor(league, tmp_path, "def team_offense(ctx):\n    raise KeyError('PTS')\n")
    assert (r.status, r.error_category) == ("failed", "processor_error")
    assert "KeyError" in (r.error_message or "")


def test_http_processor_503_twice_then_ok_keeps_one_idempotency_key(league: Path, tmp_path: Path) -> None:
    service = Service(str(league), fail_first=2)
    with served(service) as port:
        spec = byo_spec(port, tmp_path)
        with DuckDBWarehouse(league, hold=False) as w:
            t = tasks(spec, w, WEEK, "team_offense_http")[0]
            r = execute_task(t, w, spec, run_id="run-h", options={"backfill_mode": True})
            rows = rows_of(r, t, "run-h")
    assert r.status == "success" and r.rows > 0, (r.error_message, r.warnings)
    keys = {s["headers"]["Idempotency-Key"] for s in service.seen}
    assert len(service.seen) == 3 and len(keys) == 1
    assert service.seen[-1]["body"]["options"] == {"backfill_mode": True, "skip_downstream_trigger": True}
    assert service.seen[-1]["body"]["task_id"] == t.id and service.seen[-1]["body"]["attempt"] == 1
    recorded = json.loads(rows[0]["warnings"])
    assert sum("HTTP 503" in w for w in recorded) == 2  # the retried calls are in the run history


def test_http_processor_timeout_is_retried_then_transient_and_400_fails_at_once(league: Path,
                                                                                tmp_path: Path) -> None:
    slow = Service(str(league), delay=3.0)
    with served(slow) as port:
        byo_spec(port, tmp_path)
        yaml = tmp_path / "byo" / "pipeline.yaml"
        yaml.write_text(yaml.read_text().replace("timeout: 30", "timeout: 1"))
        assert "timeout: 1" in yaml.read_text()
        spec = load_spec(tmp_path / "byo")
        with DuckDBWarehouse(league, hold=False) as w:
            t = tasks(spec, w, WEEK, "team_offense_http")[0]
            r = execute_task(t, w, spec, raise_transient=False)
    assert (r.status, r.error_category) == ("failed", "transient"), r.error_message
    assert len(slow.seen) == 3
    bad = Service(str(league), status=400)
    with served(bad) as port:
        spec = byo_spec(port, tmp_path)
        with DuckDBWarehouse(league, hold=False) as w:
            r = execute_task(tasks(spec, w, WEEK, "team_offense_http")[0], w, spec, raise_transient=False)
    assert (r.status, r.error_category) == ("failed", "processor_error") and len(bad.seen) == 1
    assert "answered 400" in (r.error_message or "")


def test_enqueue_option_reaches_python_and_http_processors(env: dict, tmp_path: Path) -> None:
    """Through the CLI and a real worker: `--option` overrides the spec's options for one run."""
    from tests.integration.engine_harness import cli, wait_run

    seen = Service(str(env["wh"]), status=400)  # records the request; answers 400 so it writes nothing
    with served(seen) as port:
        byo_spec(port, tmp_path)
        record = tmp_path / "python-options.json"
        (tmp_path / "byo" / "processors.py").write_text(
            "import json\n"
            f"def team_offense(ctx):\n    open({str(record)!r}, 'w').write(json.dumps(dict(ctx.options)))\n"
            "    return 0\n")
        env["worker"]()
        for name in ("team_offense_python", "team_offense_http"):
            result = cli(env, "enqueue", "--pipeline", str(tmp_path / "byo"), "--start", "2023-11-01",
                         "--end", "2023-11-01", "--processors", name, "--option", "backfill_mode=false",
                         "--option", "season_label=2023-24")
            assert result.exit_code == 0, result.output
            wait_run(env["store"], result.stdout.strip().splitlines()[-1], timeout=120)
    assert json.loads(record.read_text()) == {"backfill_mode": False, "season_label": "2023-24"}
    assert seen.seen and seen.seen[0]["body"]["options"] == {"backfill_mode": False, "skip_downstream_trigger": True,
                                                             "season_label": "2023-24"}


def test_a_malformed_option_is_bad_input_and_enqueues_nothing(env: dict) -> None:
    from tests.integration.engine_harness import WEEK, cli

    result = cli(env, "enqueue", *WEEK, "--option", "backfill_mode")
    assert result.exit_code == 2 and "--option 'backfill_mode' is not KEY=VALUE" in result.output
    assert env["store"].list_runs() == []
