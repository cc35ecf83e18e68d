import pytest

from pipelines.nba.names import KNOWN_ALIASES, alias_lookups, alias_rows, player_lookup, resolve
from pipelines.nba.teams import TEAMS, team_abbr


@pytest.mark.parametrize(("name", "lookup"), [
    ("Nikola Jokić", "nikolajokic"),
    ("Nikola Jokic", "nikolajokic"),
    ("Luka Dončić", "lukadoncic"),
    ("Kristaps Porziņģis", "kristapsporzingis"),
    ("Jaren Jackson Jr.", "jarenjackson"),
    ("Jaren Jackson Jr", "jarenjackson"),
    ("Robert Williams III", "robertwilliams"),
    ("B.J. Boston Jr", "bjboston"),
    ("Isaiah Stewart II", "isaiahstewart"),
    ("Jae'sean Tate", "jaeseantate"),
    ("Jae'Sean Tate", "jaeseantate"),
    ("  Alperen  Şengün ", "alperensengun"),
    ("Gary Payton II", "garypayton"),
])
def test_player_lookup_ignores_accents_case_punctuation_and_suffixes(name: str, lookup: str) -> None:
    assert player_lookup(name) == lookup


def test_a_lone_suffix_like_word_is_kept() -> None:
    assert player_lookup("Iv") == "iv"


def test_known_aliases_point_at_the_official_spellings_in_the_box_scores() -> None:
    assert KNOWN_ALIASES["Herb Jones"] == "Herbert Jones"
    assert KNOWN_ALIASES["Moe Wagner"] == "Moritz Wagner"
    assert KNOWN_ALIASES["Nicolas Claxton"] == "Nic Claxton"
    assert KNOWN_ALIASES["Jimmy Butler"] == "Jimmy Butler III"
    assert KNOWN_ALIASES["B.J. Boston Jr"] == "Brandon Boston"
    assert alias_lookups()["herbjones"] == "herbertjones"


def test_alias_rows_have_one_row_per_alias_lookup() -> None:
    rows = alias_rows()
    assert len({r["alias_lookup"] for r in rows}) == len(rows) == len(KNOWN_ALIASES)


def test_resolve_prefers_the_registry_then_aliases_then_reports_a_gap() -> None:
    registry = {"nikolajokic", "herbertjones", "brandonboston", "isaiahstewart"}
    aliases = alias_lookups()
    assert resolve("Nikola Jokic", registry, aliases) == "nikolajokic"
    assert resolve("Herb Jones", registry, aliases) == "herbertjones"
    assert resolve("B.J. Boston Jr", registry, aliases) == "brandonboston"
    assert resolve("Isaiah Stewart II", registry, aliases) == "isaiahstewart"
    assert resolve("Moe Wagner", registry, aliases) is None  # alias known, player not in this registry
    assert resolve("Nobody Atall", registry, aliases) is None


def test_thirty_teams_and_the_names_feeds_write() -> None:
    assert len(TEAMS) == 30 and len({t.abbr for t in TEAMS}) == 30
    assert {t.conference for t in TEAMS} == {"East", "West"}
    assert sum(t.conference == "East" for t in TEAMS) == 15
    assert team_abbr("Los Angeles Clippers") == "LAC"
    assert team_abbr("LA Clippers") == "LAC"
    assert team_abbr("Philadelphia 76ers") == "PHI"
    assert team_abbr("portland trail blazers") == "POR"
    assert team_abbr("Seattle SuperSonics") is None
