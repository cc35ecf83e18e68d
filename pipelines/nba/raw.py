"""Schemas of the raw (Phase 2) NBA tables and the player registry.

Teams are identified by their three-letter abbreviation everywhere (`CLE`, `NOP`).
"""

from __future__ import annotations

from backfill.warehouse.schema import TableSchema, schema

_GAME = (("game_id", "STRING", True), ("game_date", "DATE", True), ("season", "STRING", True),
         ("season_type", "STRING", True))
_COUNTS = tuple((c, "INT64") for c in ("fgm", "fga", "fg3m", "fg3a", "ftm", "fta", "oreb", "dreb", "reb",
                                          "ast", "stl", "blk", "tov", "pf"))

SCHEDULE = schema("nba_raw.schedule", "game_date", *_GAME,
                  ("home_team", "STRING", True), ("away_team", "STRING", True), ("source", "STRING"))

PLAYER_BOXSCORES = schema(
    "nba_raw.player_boxscores", "game_date", *_GAME,
    ("player_id", "INT64", True), ("player_name", "STRING", True), ("team", "STRING", True),
    ("opponent", "STRING", True), ("is_home", "BOOL", True), ("minutes", "FLOAT64"), ("points", "INT64"),
    *_COUNTS, ("plus_minus", "INT64"), ("source", "STRING"))

TEAM_BOXSCORES = schema(
    "nba_raw.team_boxscores", "game_date", *_GAME,
    ("team", "STRING", True), ("opponent", "STRING", True), ("is_home", "BOOL", True), ("points", "INT64"),
    *_COUNTS, ("source", "STRING"))

PROP_LINES = schema(
    "nba_raw.prop_lines", "game_date",
    ("game_date", "DATE", True), ("player_name", "STRING", True), ("market", "STRING", True),
    ("line", "FLOAT64", True), ("side", "STRING", True), ("price", "INT64"), ("bookmaker", "STRING", True),
    ("home_team", "STRING"), ("away_team", "STRING"), ("commence_time", "TIMESTAMP"),
    ("source_game_id", "STRING"), ("source", "STRING"))

PLAYER_REGISTRY = schema(
    "nba_reference.player_registry", None,
    ("player_id", "INT64", True), ("player_name", "STRING", True), ("player_lookup", "STRING", True))

PLAYER_ALIASES = schema(
    "nba_reference.player_aliases", None,
    ("alias_lookup", "STRING", True), ("player_lookup", "STRING", True), ("source", "STRING"))

RAW_TABLES: tuple[TableSchema, ...] = (SCHEDULE, PLAYER_BOXSCORES, TEAM_BOXSCORES, PROP_LINES,
                                       PLAYER_REGISTRY, PLAYER_ALIASES)
