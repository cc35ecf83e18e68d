"""The pure parts of the defensive checks: latest records, stale `running` rows, columns a SQL reads."""

from __future__ import annotations

import datetime as dt

from backfill.checks import Gap, columns_read, describe_gaps, latest_statuses

D = dt.date(2024, 1, 10)
NOW = dt.datetime(2024, 2, 1, 12, tzinfo=dt.UTC)


def row(status: str, minutes_ago: float, attempt: int = 1, finished: bool = True) -> dict[str, object]:
    when = NOW - dt.timedelta(minutes=minutes_ago)
    return {"processor_name": "p", "data_date": D, "status": status, "attempt": attempt,
            "started_at": when, "finished_at": when if finished else None}


def test_the_latest_record_decides() -> None:
    got = latest_statuses([row("failed", 30), row("success", 10)], now=NOW.timestamp())
    assert got[("p", D)] == ("success", "success")
    got = latest_statuses([row("success", 30), row("failed", 10)], now=NOW.timestamp())
    assert got[("p", D)] == ("failed", "failed")


def test_a_fresh_running_record_is_not_done_and_a_stale_one_is_ignored() -> None:
    fresh = latest_statuses([row("success", 60), row("running", 5, 2, finished=False)], now=NOW.timestamp(),
                            stale_running_seconds=3600)
    assert fresh[("p", D)] == ("running", "still running elsewhere")
    stale = latest_statuses([row("success", 600), row("running", 300, 2, finished=False)], now=NOW.timestamp(),
                            stale_running_seconds=3600)
    assert stale[("p", D)] == ("success", "success")
    only_stale = latest_statuses([row("running", 300, finished=False)], now=NOW.timestamp(),
                                 stale_running_seconds=3600)
    assert ("p", D) not in only_stale  # never ran, as far as any check is concerned: a gap, not a pass


def test_describe_gaps_shows_the_first_few_and_the_count() -> None:
    gaps = [Gap("pgs", D + dt.timedelta(days=i), "never ran") for i in range(7)]
    text = describe_gaps(gaps, first=2)
    assert text == "pgs@2024-01-10 (never ran), pgs@2024-01-11 (never ran) and 5 more (7 in all)"


def test_columns_read_follows_aliases_single_sources_and_star_ctes() -> None:
    sql = """
    WITH box AS (SELECT b.*, r.player_lookup AS registry_lookup FROM raw.box AS b
                 LEFT JOIN ref.registry AS r ON r.player_id = b.player_id)
    SELECT x.game_date, x.points, x.registry_lookup, s.home_team
    FROM box AS x JOIN raw.schedule AS s ON s.game_id = x.game_id
    WHERE x.minutes > 0
    """
    precise = columns_read(sql, ["raw.box", "ref.registry", "raw.schedule"], through_stars=False)
    assert precise == {"raw.box": {"player_id"}, "ref.registry": {"player_id", "player_lookup"},
                       "raw.schedule": {"home_team", "game_id"}}
    loose = columns_read(sql, ["raw.box"])
    assert {"game_date", "points", "minutes", "game_id", "player_id"} <= loose["raw.box"]
    assert "registry_lookup" not in loose["raw.box"]  # projected by the CTE itself, not read from the table
