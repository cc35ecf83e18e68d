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
team_dates AS (
  -- Each team's game dates in order: the date 10 games back (the start of the window of a date
  -- after this one), the next game date, and the date of the 10th game after (when this date
  -- leaves the team's window).
  SELECT
    season, team, past_date,
    LAG(past_date, 10) OVER team_order AS cutoff,
    LEAD(past_date) OVER team_order AS next_date,
    LEAD(past_date, 10) OVER team_order AS leaves
  FROM (SELECT DISTINCT season, team, game_date AS past_date FROM history) AS d
  WINDOW team_order AS (PARTITION BY season, team ORDER BY past_date)
),
team_window AS (
  -- A target team's window is its last 10 dates before the date: those after `cutoff`.
  SELECT t.game_date, t.season, t.team, w.cutoff
  FROM (SELECT DISTINCT game_date, season, team FROM targets) AS t
  JOIN team_dates AS w
    ON w.team = t.team AND w.season = t.season
   AND w.past_date < t.game_date AND (w.next_date IS NULL OR w.next_date >= t.game_date)
),
league_window AS (
  -- A date is in some team's last 10 games before a target date until the last of its teams
  -- has played 10 more games after it (NULL: never, within the data read).
  SELECT season, past_date, IF(COUNTIF(leaves IS NULL) > 0, NULL, MAX(leaves)) AS leaves
  FROM team_dates
  GROUP BY season, past_date
),
running AS (
  -- Set-based: each player's games for one team in order, with running totals; a window's
  -- totals are the difference of two of them, instead of re-reading 10 games per date.
  SELECT
    season, team, player_id, player_lookup, player_name, game_date,
    LEAD(game_date) OVER player_team AS next_date,
    COUNT(*) OVER (player_team ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS games,
    SUM(CAST(ROUND(minutes * 100) AS INT64))
      OVER (player_team ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS minutes,
    SUM(points) OVER (player_team ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS points,
    SUM(rebounds) OVER (player_team ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS rebounds,
    SUM(assists) OVER (player_team ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS assists,
    SUM(CAST(ROUND(minutes * 100) AS INT64)) OVER (player_team ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS minutes_5,
    SUM(points) OVER (player_team ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS points_5,
    SUM(rebounds) OVER (player_team ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS rebounds_5,
    SUM(assists) OVER (player_team ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS assists_5
  FROM history
  WINDOW player_team AS (PARTITION BY season, team, player_id ORDER BY game_date)
),
in_window AS (
  -- Per target team and player: his last game for the team before the date (inside the window)
  -- and his last one on or before the window's start; their difference is the window.
  SELECT
    w.game_date, w.season, w.team, hi.player_id, hi.player_lookup, hi.player_name, hi.game_date AS last_played_date,
    hi.games - COALESCE(lo.games, 0) AS games_in_window,
    hi.minutes - COALESCE(lo.minutes, 0) AS minutes_l10, hi.points - COALESCE(lo.points, 0) AS points_l10,
    hi.rebounds - COALESCE(lo.rebounds, 0) AS rebounds_l10, hi.assists - COALESCE(lo.assists, 0) AS assists_l10,
    hi.minutes_5, hi.points_5, hi.rebounds_5, hi.assists_5
  FROM team_window AS w
  JOIN running AS hi
    ON hi.season = w.season AND hi.team = w.team
   AND hi.game_date < w.game_date AND (hi.next_date IS NULL OR hi.next_date >= w.game_date)
   AND (w.cutoff IS NULL OR hi.game_date > w.cutoff)
  LEFT JOIN running AS lo
    ON lo.season = w.season AND lo.team = w.team AND lo.player_id = hi.player_id
   AND lo.game_date <= w.cutoff AND (lo.next_date IS NULL OR lo.next_date > w.cutoff)
),
moved_on AS (
  -- A player belongs to the team of his latest appearance inside every team's last 10 games
  -- (on one date, the alphabetically first team): a later one elsewhere takes him off this team.
  SELECT DISTINCT i.game_date, i.team, i.player_id
  FROM in_window AS i
  JOIN history AS p
    ON p.player_id = i.player_id AND p.season = i.season AND p.game_date < i.game_date
   AND (p.game_date > i.last_played_date OR (p.game_date = i.last_played_date AND p.team < i.team))
  JOIN league_window AS l ON l.season = p.season AND l.past_date = p.game_date
  WHERE l.leaves IS NULL OR l.leaves >= i.game_date
),
players AS (
  SELECT
    i.game_date, i.team, i.player_id, i.player_lookup, i.player_name, i.last_played_date, i.games_in_window,
    ROUND(IF(i.games_in_window <= 5, i.minutes_l10, i.minutes_5) / LEAST(i.games_in_window, 5) / 100, 3)
      AS l5_minutes,
    ROUND(i.minutes_l10 / i.games_in_window / 100, 3) AS l10_minutes,
    ROUND(IF(i.games_in_window <= 5, i.points_l10, i.points_5) / LEAST(i.games_in_window, 5), 3) AS l5_points,
    ROUND(i.points_l10 / i.games_in_window, 3) AS l10_points,
    ROUND(IF(i.games_in_window <= 5, i.rebounds_l10, i.rebounds_5) / LEAST(i.games_in_window, 5), 3) AS l5_rebounds,
    ROUND(i.rebounds_l10 / i.games_in_window, 3) AS l10_rebounds,
    ROUND(IF(i.games_in_window <= 5, i.assists_l10, i.assists_5) / LEAST(i.games_in_window, 5), 3) AS l5_assists,
    ROUND(i.assists_l10 / i.games_in_window, 3) AS l10_assists
  FROM in_window AS i
  LEFT JOIN moved_on AS m ON m.game_date = i.game_date AND m.team = i.team AND m.player_id = i.player_id
  WHERE m.player_id IS NULL
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
JOIN rest AS r ON r.game_date = t.game_date AND r.team = t.team
LEFT JOIN lines AS l ON l.game_date = t.game_date AND l.player_lookup = pl.player_lookup
