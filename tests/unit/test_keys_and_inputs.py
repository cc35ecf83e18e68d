"""Pure pieces behind issue 21: duplicate keys in rows, strict list flags, URLs redacted whatever
their port, the fix a strict dependency gap names, and when `gaps` must add --with-upstream."""

from __future__ import annotations

import datetime as dt

import pytest

from backfill.checks import ROWS_GONE, Gap, gap_fix
from backfill.cli.selection import _csv, parse_phases
from backfill.errors import BadInput
from backfill.keys import duplicates_in, keep_last
from backfill.settings import redact_url

ROWS = [{"g": "1", "p": 7, "pts": 10}, {"g": "1", "p": 8, "pts": 3}, {"g": "1", "p": 7, "pts": 12},
        {"g": "2", "p": 7, "pts": 5}]


def test_duplicates_name_the_key_and_every_position() -> None:
    (dup,) = duplicates_in(ROWS, ("g", "p"))
    assert dup.key == ("1", 7) and dup.positions == (0, 2)
    assert dup.describe(("game_id", "player_id")) == "(game_id=1, player_id=7)"
    assert duplicates_in(ROWS, ("g", "p", "pts")) == []


def test_keep_last_keeps_the_later_copy_in_place_and_counts_the_rest() -> None:
    kept, dropped = keep_last(ROWS, ("g", "p"))
    assert dropped == 1
    assert kept == [ROWS[1], ROWS[2], ROWS[3]]


@pytest.mark.parametrize("value", ["", " ", "3,", ",3", "3,,4"])
def test_a_list_flag_with_an_empty_item_is_refused(value: str) -> None:
    with pytest.raises(BadInput, match="has an empty item"):
        parse_phases(value)


def test_a_list_flag_left_out_selects_everything() -> None:
    assert parse_phases(None) is None
    assert _csv(None, "--processors") == []
    assert _csv(" a , b ", "--processors") == ["a", "b"]


@pytest.mark.parametrize("url, shown", [
    ("redis://:pw@127.0.0.1:notaport/0", "redis://:***@127.0.0.1:notaport/0"),
    ("redis://:pw@127.0.0.1:99999/0", "redis://:***@127.0.0.1:99999/0"),
    ("rediss://user:pw@host:6380/1", "rediss://user:***@host:6380/1"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
])
def test_redaction_never_parses_the_port(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_gap_that_never_ran_asks_for_with_upstream_and_vanished_rows_for_force() -> None:
    d = dt.date(2023, 11, 8)
    assert "--with-upstream" in gap_fix([Gap("team_defense_game_summary", d, "never ran")])
    gone = gap_fix([Gap("player_game_summary", d, ROWS_GONE)])
    assert "--force" in gone and "player_game_summary" in gone and "--with-upstream" not in gone


def _gap(processor: str, reason: str) -> dict[str, str]:
    return {"processor": processor, "date": "2023-11-09", "reason": reason}


