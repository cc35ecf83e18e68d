-- upcoming_player_game_context: every player of a team playing on a date, before tip-off.
-- A team's players are those who appeared for it in its last 10 games of the season (the spec's
-- `team_games: 10` window on player_game_summary) and whose latest appearance in that window, over
-- every team's last 10 games, was for it: a player traded away is his new team's, not still his
-- old team's. L5/L10 are his last 5/10 appearances among his team's last 10 games. Rest and
-- density are the team's, from nba_raw.schedule over the 30 days before the date (`days: 30`
-- window, within the season; games_last_7_days counts the 7 calendar days before the date); the
-- prop line from the same date's nba_raw.prop_lines, resolved to player_lookup exactly as
-- player_game_summary does (registry, then aliases).
-- Fractional inputs are summed as integer hundredths: a float sum depends on the order rows
-- arrive in, and rounding its result would make the table depend on the execution order.
WITH sched AS (
  SELECT game_id, game_date, season, season_type, home_team, away_team
  FROM nba_raw.schedule
  WHERE game_date BETWEEN @window_start AND @end_date
    AND season_type IN ('regular', 'play_in', 'playoffs')
),
team_games AS (
  SELECT game_id, game_date, season, season_type, home_team AS team, away_team AS opponent, TRUE AS is_home FROM sched
  UNION ALL
  SELECT game_id, game_date, season, season_type, away_team AS team, home_team AS opponent, FALSE AS is_home FROM sched
),
targets AS (
  SELECT * FROM team_games WHERE game_date BETWEEN @start_date AND @end_date
),
rest AS (
  SELECT
    t.game_date, t.team,
    MAX(h.game_date) AS last_game_date,
    COUNTIF(COALESCE(h.game_date >= DATE_SUB(t.game_date, INTERVAL 7 DAY), FALSE)) AS games_last_7_days,
    COUNTIF(COALESCE(h.game_date >= DATE_SUB(t.game_date, INTERVAL 14 DAY), FALSE)) AS games_last_14_days,
    COUNT(h.game_date) AS games_last_30_days
  FROM targets AS t
  LEFT JOIN team_games AS h
    ON h.team = t.team AND h.season = t.season
   AND h.game_date < t.game_date AND h.game_date >= DATE_SUB(t.game_date, INTERVAL 30 DAY)
  GROUP BY t.game_date, t.team
),
history AS (
  SELECT game_date, season, team, player_id, player_lookup, player_name, minutes, points, rebounds, assists
  FROM nba_analytics.player_game_summary
  WHERE game_date < @end_date AND game_date >= @window_start
),
team_window AS (
  SELECT t.game_date, t.team, h.past_date
  FROM targets AS t
  JOIN (SELECT DISTINCT game_date AS past_date, season, team FROM history) AS h
    ON h.team = t.team AND h.season = t.season AND h.past_date < t.game_date
  WHERE TRUE  -- BigQuery accepts QUALIFY only with a WHERE, GROUP BY or HAVING clause
  QUALIFY ROW_NUMBER() OVER (PARTITION BY t.game_date, t.team ORDER BY h.past_date DESC) <= 10
),
league_window AS (
  -- The dates of every team's last 10 games: all a task on the date may read (the spec's window).
  SELECT DISTINCT game_date, past_date FROM (
    SELECT d.game_date, h.past_date
    FROM (SELECT DISTINCT game_date, season FROM targets) AS d
    JOIN (SELECT DISTINCT game_date AS past_date, season, team FROM history) AS h
      ON h.season = d.season AND h.past_date < d.game_date
    WHERE TRUE  -- BigQuery accepts QUALIFY only with a WHERE, GROUP BY or HAVING clause
    QUALIFY ROW_NUMBER() OVER (PARTITION BY d.game_date, h.team ORDER BY h.past_date DESC) <= 10
  )
),
latest_team AS (
  SELECT w.game_date, p.player_id, p.team
  FROM league_window AS w
  JOIN history AS p ON p.game_date = w.past_date
  WHERE TRUE  -- (QUALIFY needs a WHERE in BigQuery)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY w.game_date, p.player_id ORDER BY p.game_date DESC, p.team) = 1
),
appearances AS (
  SELECT
    w.game_date, w.team, p.player_id, p.player_lookup, p.player_name, p.game_date AS played_date,
    p.minutes, p.points, p.rebounds, p.assists,
    ROW_NUMBER() OVER (PARTITION BY w.game_date, w.team, p.player_id ORDER BY p.game_date DESC) AS rn
  FROM team_window AS w
  JOIN history AS p ON p.team = w.team AND p.game_date = w.past_date
),
players AS (
  SELECT
    game_date, team, player_id,
    MAX(IF(rn = 1, player_lookup, NULL)) AS player_lookup,
    MAX(IF(rn = 1, player_name, NULL)) AS player_name,
    MAX(played_date) AS last_played_date,
    COUNT(*) AS games_in_window,
    ROUND(AVG(IF(rn <= 5, CAST(ROUND(minutes * 100) AS INT64), NULL)) / 100, 3) AS l5_minutes,
    ROUND(AVG(CAST(ROUND(minutes * 100) AS INT64)) / 100, 3) AS l10_minutes,
    ROUND(AVG(IF(rn <= 5, points, NULL)), 3) AS l5_points,
    ROUND(AVG(points), 3) AS l10_points,
    ROUND(AVG(IF(rn <= 5, rebounds, NULL)), 3) AS l5_rebounds,
    ROUND(AVG(rebounds), 3) AS l10_rebounds,
    ROUND(AVG(IF(rn <= 5, assists, NULL)), 3) AS l5_assists,
    ROUND(AVG(assists), 3) AS l10_assists
  FROM appearances
  GROUP BY game_date, team, player_id
),
known AS (
  SELECT DISTINCT player_lookup FROM nba_reference.player_registry
),
props AS (
  SELECT
    game_date, line,
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
  WHERE game_date BETWEEN @start_date AND @end_date AND market = 'player_points'
),
lines AS (
  SELECT p.game_date, COALESCE(k.player_lookup, a.player_lookup) AS player_lookup,
         ROUND(AVG(p.line), 2) AS points_line
  FROM props AS p
  LEFT JOIN known AS k ON k.player_lookup = p.name_lookup
  LEFT JOIN (SELECT alias_lookup, MIN(player_lookup) AS player_lookup
             FROM nba_reference.player_aliases GROUP BY alias_lookup) AS a
    ON a.alias_lookup = p.name_lookup
  WHERE COALESCE(k.player_lookup, a.player_lookup) IS NOT NULL
  GROUP BY 1, 2
)
SELECT
  t.game_date, t.season, t.season_type, t.game_id, pl.player_id, pl.player_lookup, pl.player_name,
  t.team, t.opponent, t.is_home,
  DATE_DIFF(t.game_date, r.last_game_date, DAY) AS days_rest,
  COALESCE(DATE_DIFF(t.game_date, r.last_game_date, DAY) = 1, FALSE) AS back_to_back,
  r.games_last_7_days, r.games_last_14_days, r.games_last_30_days,
  DATE_DIFF(t.game_date, pl.last_played_date, DAY) AS days_since_last_played,
  pl.games_in_window,
  pl.l5_minutes, pl.l10_minutes, pl.l5_points, pl.l10_points,
  pl.l5_rebounds, pl.l10_rebounds, pl.l5_assists, pl.l10_assists,
  l.points_line
FROM targets AS t
JOIN players AS pl ON pl.game_date = t.game_date AND pl.team = t.team
JOIN latest_team AS lt ON lt.game_date = t.game_date AND lt.player_id = pl.player_id AND lt.team = t.team
JOIN rest AS r ON r.game_date = t.game_date AND r.team = t.team
LEFT JOIN lines AS l ON l.game_date = t.game_date AND l.player_lookup = pl.player_lookup
