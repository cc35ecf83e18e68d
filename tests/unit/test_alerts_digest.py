"""The pure half of alerts: one classification, issues out of a task result, digests and their runs."""

from __future__ import annotations

from backfill.alerts.categories import CRITICAL, Issue, category_of, cause_key, issues_of
from backfill.alerts.digest import build_digest, date_runs
from backfill.alerts.message import Alert

GAME_DATES = ["2024-02-12", "2024-02-13", "2024-02-14", "2024-02-22", "2024-02-23", "2024-02-25"]


def test_runs_follow_game_dates_so_the_all_star_break_does_not_split_them() -> None:
    affected = ["2024-02-13", "2024-02-14", "2024-02-22", "2024-02-25"]
    assert date_runs(affected, GAME_DATES) == [("2024-02-13", "2024-02-22"), ("2024-02-25", "2024-02-25")]
    assert date_runs(["2024-02-12", "2024-02-14"], GAME_DATES) == [("2024-02-12", "2024-02-12"),
                                                                   ("2024-02-14", "2024-02-14")]


def test_access_problems_are_critical_whatever_the_layer_called_them() -> None:
    assert category_of("auth_config") == CRITICAL
    assert category_of("processor_error", "Invalid Input Error: Access Denied: Table x: permission denied") == CRITICAL
    assert category_of("processor_error", "404 Not found: Dataset proj:nba_raw was not found") == CRITICAL
    assert category_of("processor_error", "Binder Error: division by zero") == "processor_error"
    assert category_of("no_such_thing") == "processor_error"
    assert category_of("partial_data", "access denied in a note") == "partial_data"  # only errors are promoted
    # one denied table on many dates is one cause
    assert cause_key("p", CRITICAL, "Access Denied on 2023-10-26 (job 123)") == \
        cause_key("p", CRITICAL, "Access Denied on 2024-01-02 (job 987)")
    assert cause_key("p", CRITICAL, "Access Denied") != cause_key("q", CRITICAL, "Access Denied")


def test_issues_of_a_bisected_batch_name_each_bad_date_and_the_registry_gaps() -> None:
    result = {"processor": "player_game_summary", "dates": ["2024-02-12", "2024-02-13", "2024-02-14"],
              "status": "failed", "error_category": "processor_error", "error_message": "2024-02-13: boom",
              "status_by_date": {"2024-02-12": "success", "2024-02-13": "failed", "2024-02-14": "partial"},
              "issues_by_date": {"2024-02-13": ["processor_error", "boom\nsecond line"],
                                 "2024-02-14": ["partial_data", "no rows for team BOS"]},
              "unresolved_players": 2, "warnings": ["2 player name(s) did not resolve through the registry"]}
    got = issues_of(result)
    assert [(i.category, i.date, i.status, i.message) for i in got if i.category != "registry_gap"] == [
        ("processor_error", "2024-02-13", "failed", "boom"), ("partial_data", "2024-02-14", "partial",
                                                             "no rows for team BOS")]
    assert sorted(i.date for i in got if i.category == "registry_gap") == ["2024-02-12", "2024-02-14"]
    assert issues_of({"processor": "p", "dates": ["2024-02-12"], "status": "success"}) == []


def test_a_digest_counts_each_date_once_and_its_fingerprint_ignores_the_kind() -> None:
    issues = [Issue("processor_error", "p", d, "failed", f"boom on {d}") for d in GAME_DATES[:3]]
    issues += [Issue("processor_error", "p", GAME_DATES[0], "failed", "again")]  # a duplicate settle
    issues += [Issue("dependency_gap", "q", d, "blocked", "blocked: upstream p failed") for d in GAME_DATES[:2]]
    issues += [Issue("registry_gap", "p", GAME_DATES[5], "partial", "1 name")]
    season = build_digest("RUN", "season", "2023-24", issues, {"p": GAME_DATES, "q": GAME_DATES})
    by = {(g.category, g.processor): g for g in season.groups}
    assert by[("processor_error", "p")].count == 3 and by[("processor_error", "p")].runs == [(GAME_DATES[0],
                                                                                             GAME_DATES[2])]
    assert by[("dependency_gap", "q")].blocked == 2 and by[("registry_gap", "p")].partial == 1
    assert [g.category for g in season.groups][-1] == "registry_gap"  # failures first
    shown = build_digest("RUN", "current", "2023-24", reversed(issues), {"p": GAME_DATES, "q": GAME_DATES})
    assert shown.fingerprint() == season.fingerprint()
    fewer = build_digest("RUN", "update", "2023-24", issues[:2], {"p": GAME_DATES})
    assert fewer.fingerprint() != season.fingerprint()
    text = Alert("season", "RUN", "season:2023-24", digest=season).text()
    assert "- processor_error / p: 3 date(s) (3 failed); 2024-02-12..2024-02-14" in text
    assert "<td>dependency_gap</td>" in Alert("season", "RUN", "s", digest=season).html()
