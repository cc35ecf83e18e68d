-- player_shot_zone_analysis: per player of a team playing on a date, the shot mix of his last 10
-- appearances, and of his last 20 for the trend, among his team's last 20 games of the season
-- (`team_games: 20` on player_game_summary). A player belongs to the team of his latest
-- appearance in that window (over every team's last 20 games), so a player traded away is not
-- still listed with his old team. The date's schedule (same_date) names the teams.
-- The raw data has no shot locations, so "zones" are the mix: 3PA share of shots, free-throw
-- rate, points per shot attempt (FGA + 0.44 FTA).
WITH targets AS (
  SELECT game_date, season, home_team AS team FROM nba_raw.schedule
  WHERE game_date BETWEEN @start_date AND @end_date AND season_type IN ('regular', 'play_in', 'playoffs')
  UNION DISTINCT
  SELECT game_date, season, away_team AS team FROM nba_raw.schedule
  WHERE game_date BETWEEN @start_date AND @end_date AND season_type IN ('regular', 'play_in', 'playoffs')
),
history AS (
  SELECT game_date, season, team, player_id, player_lookup, points, fga, fg3a, fta, minutes
  FROM nba_analytics.player_game_summary
  WHERE game_date < @end_date AND game_date >= @window_start
),
team_window AS (
  SELECT t.game_date, t.season, t.team, h.past_date
  FROM targets AS t
  JOIN (SELECT DISTINCT game_date AS past_date, season, team FROM history) AS h
    ON h.team = t.team AND h.season = t.season AND h.past_date < t.game_date
  WHERE TRUE  -- BigQuery accepts QUALIFY only with a WHERE, GROUP BY or HAVING clause
  QUALIFY ROW_NUMBER() OVER (PARTITION BY t.game_date, t.team ORDER BY h.past_date DESC) <= 20
),
league_window AS (
  -- The dates of every team's last 20 games: all a task on the date may read (the spec's window).
  SELECT DISTINCT game_date, past_date FROM (
    SELECT d.game_date, h.past_date
    FROM (SELECT DISTINCT game_date, season FROM targets) AS d
    JOIN (SELECT DISTINCT game_date AS past_date, season, team FROM history) AS h
      ON h.season = d.season AND h.past_date < d.game_date
    WHERE TRUE  -- (QUALIFY needs a WHERE in BigQuery)
    QUALIFY ROW_NUMBER() OVER (PARTITION BY d.game_date, h.team ORDER BY h.past_date DESC) <= 20
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
    w.game_date, w.season, w.team, p.player_id, p.player_lookup, p.points, p.fga, p.fg3a, p.fta,
    ROW_NUMBER() OVER (PARTITION BY w.game_date, w.team, p.player_id ORDER BY p.game_date DESC) AS rn
  FROM team_window AS w
  JOIN history AS p ON p.team = w.team AND p.game_date = w.past_date
  JOIN latest_team AS lt ON lt.game_date = w.game_date AND lt.player_id = p.player_id AND lt.team = w.team
),
agg AS (
  SELECT
    game_date, season, team, player_id,
    MAX(IF(rn = 1, player_lookup, NULL)) AS player_lookup,
    COUNTIF(rn <= 10) AS games_l10,
    COUNT(*) AS games_l20,
    SUM(IF(rn <= 10, fga, 0)) AS fga_l10, SUM(IF(rn <= 10, fg3a, 0)) AS fg3a_l10,
    SUM(IF(rn <= 10, fta, 0)) AS fta_l10, SUM(IF(rn <= 10, points, 0)) AS points_l10,
    SUM(fga) AS fga_l20, SUM(fg3a) AS fg3a_l20, SUM(fta) AS fta_l20, SUM(points) AS points_l20
  FROM appearances
  GROUP BY game_date, season, team, player_id
)
SELECT
  game_date, season, team, player_id, player_lookup, games_l10, games_l20,
  ROUND(SAFE_DIVIDE(fga_l10, games_l10), 3) AS shots_per_game_l10,
  ROUND(SAFE_DIVIDE(fg3a_l10, fga_l10), 4) AS fg3a_share_l10,
  ROUND(SAFE_DIVIDE(fta_l10, fga_l10), 4) AS fta_rate_l10,
  ROUND(SAFE_DIVIDE(points_l10, fga_l10 + 0.44 * fta_l10), 4) AS points_per_shot_l10,
  ROUND(SAFE_DIVIDE(fga_l20, games_l20), 3) AS shots_per_game_l20,
  ROUND(SAFE_DIVIDE(fg3a_l20, fga_l20), 4) AS fg3a_share_l20,
  ROUND(SAFE_DIVIDE(fta_l20, fga_l20), 4) AS fta_rate_l20,
  ROUND(SAFE_DIVIDE(points_l20, fga_l20 + 0.44 * fta_l20), 4) AS points_per_shot_l20,
  ROUND(SAFE_DIVIDE(points_l10, fga_l10 + 0.44 * fta_l10) - SAFE_DIVIDE(points_l20, fga_l20 + 0.44 * fta_l20), 4)
    AS points_per_shot_trend
FROM agg
