"""`backfill report` after real runs: a test week that fails the way a new user's does, then the fix.

The test week (2023-11-01..07) of a league with nothing backfilled fails for real: the lookback
windows of the Phase 3 contexts and Phase 4 reach back to the season start (2023-10-24), whose
partitions never ran, so strict checks fail those tasks (dependency_gap) and block their
dependents. Every figure the log prints is checked against run state and the run history read
independently here; the HTML is opened in a real headless Chromium.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest

from backfill.state import RunStatus
from tests.integration.engine_harness import WEEK, cli, enqueue, history, wait_run
from tests.support.chromium import Chromium

pytestmark = pytest.mark.integration
RED = ("#d62728", "rgb(214,39,40)", "rgb(214, 39, 40)")


def failed_test_week(env: dict) -> str:
    env["worker"]()
    run_id = enqueue(env, "--batch", "1", selection=WEEK)
    assert wait_run(env["store"], run_id, timeout=120).status is RunStatus.failed
    return run_id


def test_the_log_of_a_failed_test_week_matches_run_state_and_html_shows_failures_red(env: dict,
                                                                                     tmp_path: Path) -> None:
    run_id = failed_test_week(env)
    store = env["store"]
    states = Counter(s.value for s in store.states(run_id).values())
    assert states["failed"] > 0 and states["blocked"] > 0, states  # the premise: a run with failures

    md = cli(env, "report", run_id)
    assert md.exit_code == 0, md.output
    log = md.stdout
    assert f"## Run 1 of 1: {run_id} (failed)" in log
    assert "70 tasks in 4 waves over 7 game dates" in log
    assert (f"| all |  | **{states['succeeded']}** | **{states['failed']}** | **{states['blocked']}** |") in log
    assert "| dependency_gap | upcoming_player_game_context | 7 |" in log  # the digest, by category
    assert "`phase3->phase4`" in log and "still paused" not in log  # released when the run finished
    # Its failures are upstream holes outside the run: a retry would meet them again (test_hints.py).
    assert f"backfill retry {run_id}" not in log
    assert "backfill enqueue --range 2023-11-01:2023-11-07 --phases 3,4 --with-upstream --wait" in log
    assert "  backfill validate --range 2023-11-01:2023-11-07 --phases 3,4\n" in log

    data = json.loads(cli(env, "report", run_id, "--json").stdout)
    run = data["runs"][0]
    assert {k: v for k, v in run["counts"].items() if v} == dict(states)
    assert sum(w["tasks"] for w in run["timeline"]["wave"]) == 70
    # The heat map's cells are the warehouse's latest status per partition, read here directly.
    latest: dict[tuple[str, str], str] = {}
    for r in sorted(history(env["wh"]), key=lambda r: (r["finished_at"], r["attempt"])):
        latest[(r["processor_name"], r["data_date"].isoformat())] = r["status"]
    cells = {(c["processor"], c["date"]): c["status"] for c in data["coverage"]["cells"]}
    assert len(cells) == 70
    assert {k for k, v in cells.items() if v == "failed"} == {k for k, v in latest.items() if v == "failed"}
    assert {k for k, v in cells.items() if v == "blocked"} == {k for k, v in latest.items() if v == "blocked"}
    failed_cells = sum(1 for v in cells.values() if v == "failed")
    timed = sum(1 for t in run["tasks"] if t["started_at"] and t["finished_at"])  # blocked tasks never start
    assert timed == 70 - states["blocked"]

    page = tmp_path / "report.html"
    result = cli(env, "report", run_id, "--html", str(page))
    assert result.exit_code == 0, result.output
    assert "<script src" not in page.read_text() and "http://" not in page.read_text().split("<script>")[0]
    with Chromium(tmp_path) as browser:
        browser.open(page.as_uri(), "window.reportReady")
        shot = browser.screenshot(tmp_path / "report.png")
        counts = browser.evaluate("""(() => {
          const n = (sel) => document.querySelectorAll(sel).length;
          const fills = [...document.querySelectorAll('#heatmap svg path')].map(p => p.getAttribute('fill'));
          return {heat: n('#heatmap svg path'), fills: fills, gantt: n('#timeline-0 svg path'),
                  line: n('#throughput svg path'), rows: n('#failures tr.failed'),
                  red: [...document.querySelectorAll('#failures tr.failed td.status')]
                         .map(td => getComputedStyle(td).backgroundColor)};
        })()""")
        errors = browser.console_errors()
    assert errors == [], errors
    assert shot.stat().st_size > 20_000
    red_cells = sum(1 for f in counts["fills"] if f in RED)
    assert red_cells == failed_cells > 0, (red_cells, failed_cells)
    assert counts["heat"] >= 70 and counts["gantt"] >= timed and counts["line"] >= 1, counts  # + axis lines
    assert counts["rows"] >= states["failed"] and set(counts["red"]) == {"rgb(214, 39, 40)"}, counts


def test_a_campaign_log_shows_each_problem_resolved_by_the_run_that_fixed_it(env: dict) -> None:
    first = failed_test_week(env)
    fill = enqueue(env, "--wait", selection=("--start", "2023-10-24", "--end", "2023-10-31", "--phases", "3,4"))
    assert env["store"].get_run(fill).status is RunStatus.succeeded  # type: ignore[union-attr]
    retried = cli(env, "retry", first, "--wait")
    assert retried.exit_code == 0, retried.output

    today = dt.datetime.now(dt.UTC).date().isoformat()
    result = cli(env, "report", "--since", today, "--validate", "--json")
    data = json.loads(result.stdout)
    assert [r["run_id"] for r in data["runs"]] == [first, fill]
    assert {c["status"] for c in data["coverage"]["cells"]} == {"succeeded"}
    dates = data["coverage"]["dates"]
    assert dates[0] == "2023-10-24" and dates[-1] == "2023-11-07"
    assert len(data["coverage"]["cells"]) == 10 * len(dates)
    issues = {(i["category"], i["processor"]): i for i in data["issues"]}
    gap = issues[("dependency_gap", "upcoming_player_game_context")]
    assert gap["dates"] == 7 and gap["open"] == 0 and gap["resolved_by"] == {first: 7}
    retried_tasks = {r["task_id"]: r for r in data["runs"][0]["retried"]}
    assert retried_tasks["upcoming_player_game_context@2023-11-01"]["failed_attempts"][0]["status"] == "failed"
    verdict = data["validations"][-1]
    assert result.exit_code == (0 if verdict["passed"] else 1), (result.exit_code, verdict)
    assert not any("retry" in c["command"] for c in data["commands"])


def test_report_refuses_bad_input_with_exit_2_and_writes_nothing(env: dict, tmp_path: Path) -> None:
    unknown = cli(env, "report", "bf-20990101-000000-000000")
    assert unknown.exit_code == 2 and "no run bf-20990101-000000-000000" in unknown.output
    nothing = cli(env, "report")  # the latest run, but there is none
    assert nothing.exit_code == 2 and "no runs in Redis yet" in nothing.output
    bad_date = cli(env, "report", "--since", "yesterday")
    assert bad_date.exit_code == 2 and "--since 'yesterday' is not a date" in bad_date.output
    nowhere = tmp_path / "missing-dir" / "r.html"
    refused = cli(env, "report", "--since", "2020-01-01", "--html", str(nowhere))
    assert refused.exit_code == 2 and "does not exist" in refused.output and not nowhere.parent.exists()
