import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from backfill.errors import BadInput
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba.load import table_counts
from pipelines.nba.names import alias_lookups, player_lookup, resolve
from pipelines.nba.sample import DEFAULT_SEASONS, generate_league, load_sample

Tables = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def league() -> Tables:
    return generate_league()


def _games(league: Tables, season: str, season_type: str) -> list[dict[str, Any]]:
    return [g for g in league["nba_raw.schedule"] if g["season"] == season and g["season_type"] == season_type]


def test_same_seed_gives_the_same_rows_and_another_seed_does_not(league: Tables) -> None:
    again = generate_league(("2023-24",), seed=7)
    mine = [g for g in league["nba_raw.schedule"] if g["season"] == "2023-24"]
    assert again["nba_raw.schedule"] == mine
    assert again["nba_raw.player_boxscores"] == [
        r for r in league["nba_raw.player_boxscores"] if r["season"] == "2023-24"]
    assert generate_league(("2023-24",), seed=8)["nba_raw.player_boxscores"] != again["nba_raw.player_boxscores"]


@pytest.mark.parametrize(("season", "opening"), [
    ("2021-22", dt.date(2021, 10, 19)), ("2022-23", dt.date(2022, 10, 18)),
    ("2023-24", dt.date(2023, 10, 24)), ("2024-25", dt.date(2024, 10, 22))])
def test_each_season_opens_on_a_late_october_tuesday(league: Tables, season: str, opening: dt.date) -> None:
    dates = sorted({g["game_date"] for g in _games(league, season, "regular")})
    assert dates[0] == opening and opening.weekday() == 1
    assert dates[-1].month == 4 and 8 <= dates[-1].day <= 16
    assert 150 <= len(dates) <= 170


@pytest.mark.parametrize("season", DEFAULT_SEASONS)
def test_every_team_plays_82_games_and_never_twice_a_day(league: Tables, season: str) -> None:
    games = _games(league, season, "regular")
    assert len(games) == 1230
    per_team = Counter(t for g in games for t in (g["home_team"], g["away_team"]))
    assert len(per_team) == 30 and set(per_team.values()) == {82}
    for g in league["nba_raw.schedule"]:
        assert g["home_team"] != g["away_team"]
    per_day = Counter((g["game_date"], t) for g in league["nba_raw.schedule"] if g["season"] == season
                      for t in (g["home_team"], g["away_team"]))
    assert max(per_day.values()) == 1


@pytest.mark.parametrize("season", DEFAULT_SEASONS)
def test_calendar_has_off_days_back_to_backs_and_an_all_star_break(league: Tables, season: str) -> None:
    games = _games(league, season, "regular")
    dates = sorted({g["game_date"] for g in games})
    gaps = [(b - a).days for a, b in zip(dates, dates[1:], strict=False)]
    feb = [(a, (b - a).days - 1) for a, b in zip(dates, dates[1:], strict=False) if a.month == 2]
    assert max(days for _, days in feb) >= 5  # All-Star break
    assert 1 < max(gaps) and gaps.count(2) > 0  # league-wide off days
    year = int(season[:4])
    thanksgiving = max(d for d in (dt.date(year, 11, 22 + i) for i in range(7)) if d.weekday() == 3)
    assert thanksgiving not in dates
    team_dates: dict[str, list[dt.date]] = defaultdict(list)
    for g in games:
        for t in (g["home_team"], g["away_team"]):
            team_dates[t].append(g["game_date"])
    back_to_backs = sum(1 for ds in team_dates.values() for a, b in zip(sorted(ds), sorted(ds)[1:], strict=False)
                        if (b - a).days == 1)
    assert back_to_backs > 100


@pytest.mark.parametrize("season", DEFAULT_SEASONS)
def test_play_in_then_four_playoff_rounds_ending_in_june(league: Tables, season: str) -> None:
    regular_end = max(g["game_date"] for g in _games(league, season, "regular"))
    play_in = _games(league, season, "play_in")
    assert len(play_in) == 6 and 2 <= len({g["game_date"] for g in play_in}) <= 3
    assert all(g["game_id"].startswith("005") and g["game_date"] > regular_end for g in play_in)
    playoffs = _games(league, season, "playoffs")
    assert all(g["game_id"].startswith("004") for g in playoffs)
    assert min(g["game_date"] for g in playoffs) > max(g["game_date"] for g in play_in)
    series = Counter(g["game_id"][7:9] for g in playoffs)  # round digit + series digit
    rounds = Counter(k[0] for k in series)
    assert rounds == {"1": 8, "2": 4, "3": 2, "4": 1}
    assert all(4 <= n <= 7 for n in series.values())
    assert max(g["game_date"] for g in playoffs).month == 6


def test_game_ids_are_nba_style(league: Tables) -> None:
    ids = [g["game_id"] for g in league["nba_raw.schedule"]]
    assert len(ids) == len(set(ids))
    assert "0022100001" in ids and all(len(i) == 10 and i.isdigit() for i in ids)


def test_box_score_invariants(league: Tables) -> None:
    minutes: Counter[tuple[str, str]] = Counter()
    for r in league["nba_raw.player_boxscores"]:
        assert 0 <= r["minutes"] <= 48
        assert r["points"] == 2 * r["fgm"] + r["fg3m"] + r["ftm"]
        assert 0 <= r["fg3m"] <= r["fg3a"] <= r["fga"] and r["fgm"] <= r["fga"] and r["fg3m"] <= r["fgm"]
        assert 0 <= r["ftm"] <= r["fta"]
        assert r["reb"] == r["oreb"] + r["dreb"]
        assert r["pf"] <= 6
        minutes[(r["game_id"], r["team"])] += r["minutes"]
    assert set(minutes.values()) == {240}
    teams = league["nba_raw.team_boxscores"]
    assert len(teams) == 2 * len(league["nba_raw.schedule"])
    points = Counter()
    for r in league["nba_raw.player_boxscores"]:
        points[(r["game_id"], r["team"])] += r["points"]
    for t in teams:
        assert t["points"] == points[(t["game_id"], t["team"])]
    by_game = defaultdict(list)
    for t in teams:
        by_game[t["game_id"]].append(t["points"])
    assert all(a != b for a, b in by_game.values())  # no ties
    assert 90 < sum(t["points"] for t in teams) / len(teams) < 130


def test_player_ids_are_stable_and_names_need_normalising(league: Tables) -> None:
    ids = defaultdict(set)
    for r in league["nba_raw.player_boxscores"]:
        ids[r["player_id"]].add(r["player_name"])
    assert all(len(names) == 1 for names in ids.values())
    names = {n for ns in ids.values() for n in ns}
    assert {"Nikola Jokić", "Luka Dončić", "Kristaps Porziņģis", "Jaren Jackson Jr.", "Robert Williams III"} <= names
    registry = {r["player_lookup"] for r in league["nba_reference.player_registry"]}
    assert len(registry) == len(league["nba_reference.player_registry"])


def test_prop_lines_cover_most_regulars_and_resolve_through_the_registry(league: Tables) -> None:
    props = league["nba_raw.prop_lines"]
    assert {p["market"] for p in props} == {"player_points", "player_rebounds", "player_assists"}
    assert {p["side"] for p in props} == {"Over", "Under"} and len({p["bookmaker"] for p in props}) == 2
    feed_names = {p["player_name"] for p in props}
    assert "Nikola Jokic" in feed_names and "Herb Jones" in feed_names and "Nikola Jokić" not in feed_names
    registry = {r["player_lookup"] for r in league["nba_reference.player_registry"]}
    aliases = alias_lookups()
    assert all(resolve(n, registry, aliases) for n in feed_names)
    assert player_lookup("Herb Jones") not in registry
    regulars = {(r["game_id"], r["player_id"]) for r in league["nba_raw.player_boxscores"] if r["minutes"] >= 20}
    games_with_props = {(p["game_date"], p["player_name"]) for p in props if p["market"] == "player_points"}
    assert 0.6 < len(games_with_props) / len(regulars) < 0.8
    for p in props[:500]:
        assert p["commence_time"].tzinfo is not None


def test_loading_twice_gives_the_same_row_counts(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    first = load_sample(warehouse, seasons=("2022-23", "2023-24"))
    counts = table_counts(warehouse)
    assert counts == first.rows and counts["nba_raw.schedule"] > 2600
    load_sample(warehouse, seasons=("2022-23", "2023-24"))
    assert table_counts(warehouse) == counts
    load_sample(warehouse, seasons=("2023-24",))
    assert table_counts(warehouse) == counts
    warehouse.close()


def test_a_bad_season_label_is_bad_input() -> None:
    with pytest.raises(BadInput, match="2023-2024"):
        generate_league(("2023-2024",))
