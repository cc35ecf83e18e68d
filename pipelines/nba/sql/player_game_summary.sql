-- player_game_summary: one row per player per game on the game dates in [@start_date, @end_date].
-- Reads the same dates of nba_raw.player_boxscores and nba_raw.prop_lines, plus the registry and
-- the feed aliases (unpartitioned). Box scores resolve players by player_id through the registry;
-- prop lines by player_lookup (the SQL twin of pipelines/nba/names.py:player_lookup), first
-- directly, then through nba_reference.player_aliases. Names that resolve neither way are
-- recorded by backfill/registry.py after the task, never guessed here.
WITH registry AS (
  SELECT player_id, MIN(player_lookup) AS player_lookup
  FROM nba_reference.player_registry
  GROUP BY player_id
),
known AS (
  SELECT DISTINCT player_lookup FROM nba_reference.player_registry
),
box AS (
  SELECT b.*, r.player_lookup AS registry_lookup
  FROM nba_raw.player_boxscores AS b
  LEFT JOIN registry AS r ON r.player_id = b.player_id
  WHERE b.game_date BETWEEN @start_date AND @end_date
),
props AS (
  SELECT
    game_date, market, line,
    REGEXP_REPLACE(
      REGEXP_REPLACE(
        REGEXP_REPLACE(
          TRANSLATE(LOWER(player_name),
                    'àáâãäåçèéêëìíîïñòóôõöùúûüýÿāăąćĉċčďēĕėęěĝğġģĥĩīĭįĵķĺļľńņňōŏőŕŗřśŝşšţťũūŭůűųŵŷźżžſơưǎǐǒǔǖǘǚǜǟǡǧǩǫǭǰǵǹǻȁȃȅȇȉȋȍȏȑȓȕȗșțȟȧȩȫȭȯȱȳ',
                    'aaaaaaceeeeiiiinooooouuuuyyaaaccccdeeeeegggghiiiijklllnnnooorrrssssttuuuuuuwyzzzsouaiouuuuuaagkoojgnaaaeeiioorruusthaeooooy'),
          r'[^a-z0-9\s,]', ''),
        r'([\s,]+(jr|sr|ii|iii|iv))+[\s,]*$', ''),
      r'[^a-z0-9]', '') AS name_lookup
  FROM nba_raw.prop_lines
  WHERE game_date BETWEEN @start_date AND @end_date
    AND market IN ('player_points', 'player_rebounds', 'player_assists')
),
resolved_props AS (
  SELECT p.game_date, p.market, p.line, COALESCE(k.player_lookup, a.player_lookup) AS player_lookup
  FROM props AS p
  LEFT JOIN known AS k ON k.player_lookup = p.name_lookup
  LEFT JOIN (SELECT alias_lookup, MIN(player_lookup) AS player_lookup
             FROM nba_reference.player_aliases GROUP BY alias_lookup) AS a
    ON a.alias_lookup = p.name_lookup
),
lines AS (
  SELECT
    game_date, player_lookup,
    ROUND(AVG(IF(market = 'player_points', line, NULL)), 2) AS points_line,
    ROUND(AVG(IF(market = 'player_rebounds', line, NULL)), 2) AS rebounds_line,
    ROUND(AVG(IF(market = 'player_assists', line, NULL)), 2) AS assists_line
  FROM resolved_props
  WHERE player_lookup IS NOT NULL
  GROUP BY game_date, player_lookup
),
summary AS (
  SELECT
    b.game_date, b.season, b.season_type, b.game_id, b.player_id,
    COALESCE(b.registry_lookup,
      REGEXP_REPLACE(
        REGEXP_REPLACE(
          REGEXP_REPLACE(
            TRANSLATE(LOWER(b.player_name),
                      'àáâãäåçèéêëìíîïñòóôõöùúûüýÿāăąćĉċčďēĕėęěĝğġģĥĩīĭįĵķĺļľńņňōŏőŕŗřśŝşšţťũūŭůűųŵŷźżžſơưǎǐǒǔǖǘǚǜǟǡǧǩǫǭǰǵǹǻȁȃȅȇȉȋȍȏȑȓȕȗșțȟȧȩȫȭȯȱȳ',
                      'aaaaaaceeeeiiiinooooouuuuyyaaaccccdeeeeegggghiiiijklllnnnooorrrssssttuuuuuuwyzzzsouaiouuuuuaagkoojgnaaaeeiioorruusthaeooooy'),
            r'[^a-z0-9\s,]', ''),
          r'([\s,]+(jr|sr|ii|iii|iv))+[\s,]*$', ''),
        r'[^a-z0-9]', '')) AS player_lookup,
    b.registry_lookup IS NOT NULL AS registry_resolved,
    b.player_name, b.team, b.opponent, b.is_home,
    ROUND(LEAST(GREATEST(COALESCE(b.minutes, 0), 0), 60), 2) AS minutes,
    COALESCE(b.points, 0) AS points,
    COALESCE(b.reb, COALESCE(b.oreb, 0) + COALESCE(b.dreb, 0)) AS rebounds,
    COALESCE(b.ast, 0) AS assists,
    COALESCE(b.stl, 0) AS steals,
    COALESCE(b.blk, 0) AS blocks,
    COALESCE(b.tov, 0) AS turnovers,
    COALESCE(b.fgm, 0) AS fgm, COALESCE(b.fga, 0) AS fga,
    COALESCE(b.fg3m, 0) AS fg3m, COALESCE(b.fg3a, 0) AS fg3a,
    COALESCE(b.ftm, 0) AS ftm, COALESCE(b.fta, 0) AS fta,
    COALESCE(b.oreb, 0) AS oreb, COALESCE(b.dreb, 0) AS dreb,
    b.plus_minus
  FROM box AS b
)
SELECT
  s.game_date, s.season, s.season_type, s.game_id, s.player_id, s.player_lookup, s.registry_resolved,
  s.player_name, s.team, s.opponent, s.is_home, s.minutes, s.points, s.rebounds, s.assists, s.steals,
  s.blocks, s.turnovers, s.fgm, s.fga, s.fg3m, s.fg3a, s.ftm, s.fta, s.oreb, s.dreb, s.plus_minus,
  ROUND(SAFE_DIVIDE(s.fgm, s.fga), 4) AS fg_pct,
  ROUND(SAFE_DIVIDE(s.fg3m, s.fg3a), 4) AS fg3_pct,
  ROUND(SAFE_DIVIDE(s.ftm, s.fta), 4) AS ft_pct,
  ROUND(SAFE_DIVIDE(s.points, 2 * (s.fga + 0.44 * s.fta)), 4) AS ts_pct,
  l.points_line, l.rebounds_line, l.assists_line,
  IF(l.points_line IS NULL, NULL, s.points > l.points_line) AS beat_points_line
FROM summary AS s
LEFT JOIN lines AS l ON l.game_date = s.game_date AND l.player_lookup = s.player_lookup
