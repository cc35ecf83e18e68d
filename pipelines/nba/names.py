"""Player-name normalisation and the prop feeds' aliases.

Box scores write official names with accents and suffixes (`Nikola Jokić`, `Jaren Jackson Jr.`);
prop feeds write `Nikola Jokic`, `Jaren Jackson Jr` or a nickname (`Herb Jones`). Joining the two
on raw names silently loses players, so every join goes through `player_lookup`, and the few
nicknames no normalisation can fix live in `KNOWN_ALIASES` (loaded into
`nba_reference.player_aliases` with every data load, where the SQL processors read them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping

_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})
_NOT_ALNUM = re.compile(r"[^a-z0-9]")

# Prop-feed spelling -> official spelling, as both appear in ../shared/data/nba (checked with grep).
# Names that only differ by accents, punctuation or a suffix need no entry: player_lookup joins them.
KNOWN_ALIASES: dict[str, str] = {
    "Herb Jones": "Herbert Jones",
    "Moe Wagner": "Moritz Wagner",
    "Nicolas Claxton": "Nic Claxton",
    "Jimmy Butler": "Jimmy Butler III",
    "B.J. Boston Jr": "Brandon Boston",
    "Isaiah Stewart II": "Isaiah Stewart",
    "Carlton Carrington": "Bub Carrington",
    "James Huff": "Jay Huff",
    "Ron Holland": "Ronald Holland II",
    "Derrick Jones": "Derrick Jones Jr.",
    "Paul Reed Jr": "Paul Reed",
    "Bruce Brown Jr": "Bruce Brown",
}


def player_lookup(name: str) -> str:
    """The join key for a player name: no accents, case, punctuation, spaces or generational suffix."""
    ascii_name = "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))
    tokens = [_NOT_ALNUM.sub("", t) for t in re.split(r"[\s,]+", ascii_name.lower())]
    tokens = [t for t in tokens if t]
    while len(tokens) > 1 and tokens[-1] in _SUFFIXES:
        tokens.pop()
    return "".join(tokens)


def alias_lookups(aliases: Mapping[str, str] | None = None) -> dict[str, str]:
    """alias_lookup -> player_lookup, the shape of `nba_reference.player_aliases`."""
    table = KNOWN_ALIASES if aliases is None else aliases
    return {player_lookup(alias): player_lookup(official) for alias, official in table.items()}


def alias_rows(source: str = "known_aliases") -> list[dict[str, str]]:
    """Rows for `nba_reference.player_aliases`, one per known feed spelling.

    Spellings that player_lookup already joins (`Jimmy Butler`) are kept as identity rows, so the
    table documents every feed spelling we have checked.
    """
    return [{"alias_lookup": a, "player_lookup": p, "source": source} for a, p in sorted(alias_lookups().items())]


def resolve(name: str, registry_lookups: Collection[str], aliases: Mapping[str, str]) -> str | None:
    """The registry's player_lookup for a feed name, or None: a registry gap to report, not guess.

    `aliases` maps alias_lookup -> player_lookup (see `alias_lookups`).
    """
    lookup = player_lookup(name)
    if lookup in registry_lookups:
        return lookup
    target = aliases.get(lookup)
    if target is not None and target in registry_lookups:
        return target
    return None
