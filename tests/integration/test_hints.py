"""Every command the tool suggests is pasted, from the state that printed it, and must work.

A hint that fails when pasted sends the on-call person in a circle. These tests start from the
state each hint comes from (a strict-gap test week on a fresh league; a season-by-season run),
take the command out of what the CLI printed, and run it as printed.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from backfill.state import RunStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba.sample import load_sample
from tests.integration.engine_harness import WEEK, cli, enqueue, wait_run

pytestmark = pytest.mark.integration
SUGGESTED = re.compile(r"`(backfill [^`]+)`")


def suggested(output: str, verb: str) -> list[str]:
    """The `backfill VERB ...` commands an output suggests, as bash would split them (minus `backfill`)."""
    return [shlex.split(c)[1:] for c in SUGGESTED.findall(output) if c.split()[1] == verb]


def test_the_strict_gap_weeks_hints_fill_it_when_pasted(env: dict) -> None:
    env["worker"]()
    waited = cli(env, "enqueue", *WEEK, "--batch", "1", "--wait")  # a mid-season week, its upstream never ran
    assert waited.exit_code == 1, waited.output
    run_id = waited.stdout.strip().splitlines()[-1]
    assert wait_run(env["store"], run_id).status is RunStatus.failed
    assert f"backfill retry {run_id}" not in waited.output  # a retry meets the same holes
    [from_wait] = suggested(waited.output, "enqueue")
    assert "--with-upstream" in from_wait

    gaps = cli(env, "gaps", *WEEK)
    assert gaps.exit_code == 1 and "dependency_gap" in gaps.output, gaps.output
    [from_gaps] = suggested(gaps.output, "enqueue")
    assert from_gaps[1:3] == ["--range", "2023-11-01:2023-11-07"] and "--with-upstream" in from_gaps

    report = json.loads(cli(env, "report", run_id, "--json").stdout)
    commands = [c["command"] for c in report["commands"]]
    assert not any(c.startswith("backfill retry") for c in commands), commands
    [from_report] = [shlex.split(c)[1:] for c in commands if c.startswith("backfill enqueue")]
    assert "--with-upstream" in from_report
    assert not any("--markdown" in c or "--html" in c for c in commands), commands  # nothing written into cwd

    pasted = cli(env, *from_gaps, "--wait")  # the acceptance: what `gaps` printed, pasted
    assert pasted.exit_code == 0, pasted.output
    assert cli(env, "gaps", *WEEK).exit_code == 0
    for hint in (from_wait, from_report):  # the other two: nothing left to do, and they say so with exit 0
        again = cli(env, *hint)
        assert again.exit_code == 0, again.output


def test_a_season_by_season_run_is_reported_and_validated_on_its_own_season(env: dict) -> None:
    # Two seasons in the warehouse: the range below spans the end of 2022-23 and the start of
    # 2023-24, and the run selects 2023-24 only, from its first game (every window inside).
    wh = DuckDBWarehouse(env["wh"])
    load_sample(wh, seasons=("2022-23",))
    wh.close()
    env["worker"]()
    selection = ("--range", "2023-04-01:2023-10-31", "--phases", "3,4", "--seasons", "2023-24")
    run_id = enqueue(env, "--wait", selection=selection)
    assert env["store"].get_run(run_id).status is RunStatus.succeeded  # type: ignore[union-attr]

    result = cli(env, "report", run_id, "--validate", "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 0, (data["validations"][-1:], data["commands"])
    assert data["selections"][0]["flags"] == "--range 2023-04-01:2023-10-31 --phases 3,4 --seasons 2023-24"
    assert data["validations"][-1]["passed"] and data["validations"][-1]["seasons"] == ["2023-24"]
    # The same selection without --seasons judges 2022-23 too, which this run never touched.
    everything = cli(env, "validate", "--range", "2023-04-01:2023-10-31", "--phases", "3,4")
    assert everything.exit_code == 1, everything.output
    markdown = cli(env, "report", run_id)
    assert markdown.exit_code == 0 and "latest validation of this selection failed" not in markdown.stdout
    assert "`backfill validate" not in markdown.stdout  # the passing validation covers the selection


def test_gaps_verify_finds_deleted_and_short_partitions_and_its_commands_refill_them(env: dict) -> None:
    env["worker"]()
    selection = ("--start", "2023-10-24", "--end", "2023-10-27", "--phases", "3")
    enqueue(env, "--wait", selection=selection)
    clean = cli(env, "gaps", *selection, "--verify")
    assert clean.exit_code == 0, clean.output  # right after a good run: nothing is reported
    wh = DuckDBWarehouse(env["wh"])
    wh.execute("DELETE FROM nba_analytics.player_game_summary WHERE game_date = DATE '2023-10-25'")
    wh.execute("DELETE FROM nba_analytics.player_game_summary WHERE game_date = DATE '2023-10-26' "
               "AND player_lookup IN (SELECT player_lookup FROM nba_analytics.player_game_summary "
               "WHERE game_date = DATE '2023-10-26' ORDER BY player_lookup LIMIT 5)")
    wh.close()
    assert cli(env, "gaps", *selection).exit_code == 0  # the run history alone still says done

    found = cli(env, "gaps", *selection, "--verify", "--json")
    assert found.exit_code == 1
    gaps = {(g["processor"], g["date"]): g for g in json.loads(found.stdout)["gaps"]}
    assert set(gaps) == {("player_game_summary", "2023-10-25"), ("player_game_summary", "2023-10-26")}, gaps
    assert gaps[("player_game_summary", "2023-10-25")]["rows"] == 0
    short = gaps[("player_game_summary", "2023-10-26")]
    assert short["rows"] == short["recorded_rows"] - 5

    validated = cli(env, "validate", *selection, "--spot-checks", "0")
    assert validated.exit_code == 1 and suggested(validated.output, "enqueue") == [
        ["enqueue", "--range", "2023-10-25:2023-10-26", "--processors", "player_game_summary", "--force", "--wait"]]
    shown = cli(env, "gaps", *selection, "--verify")
    assert shown.exit_code == 1 and "empty now" in shown.output, shown.output
    refill = suggested(shown.output, "enqueue")
    assert refill == [["enqueue", "--range", "2023-10-25:2023-10-26", "--processors", "player_game_summary",
                       "--force", "--wait"]], shown.output
    assert cli(env, *refill[0]).exit_code == 0
    assert cli(env, "gaps", *selection, "--verify").exit_code == 0
    [stale] = suggested(shown.output, "gaps")  # what read the refilled dates is stale now
    listed = cli(env, *stale)
    assert listed.exit_code == 1, listed.output
    [recompute] = suggested(listed.output, "enqueue")
    assert cli(env, *recompute).exit_code == 0, recompute
    assert cli(env, *stale).exit_code == 0
