-- team_defense_zone_analysis: per team playing on a date, its defense over its last 15 games of
-- the season (`team_games: 15` on team_defense_game_summary) against the league over the 30
-- calendar days before the date (`days: 30`). The date's own games are not read: these are
-- pre-game features. The schedule of the date (same_date) says which teams play and the season.
-- Fractional inputs are summed as integer hundredths: a float sum depends on the order rows
-- arrive in, and rounding its result would make the table depend on the execution order.
WITH targets AS (
  SELECT game_date, season, home_team AS team FROM nba_raw.schedule
  WHERE game_date BETWEEN @start_date AND @end_date AND season_type IN ('regular', 'play_in', 'playoffs')
  UNION DISTINCT
  SELECT game_date, season, away_team AS team FROM nba_raw.schedule
  WHERE game_date BETWEEN @start_date AND @end_date AND season_type IN ('regular', 'play_in', 'playoffs')
),
history AS (
  SELECT game_date, season, team, points_allowed, opp_fgm, opp_fga, opp_fg3m, opp_fg3a, opp_fta, opp_possessions
  FROM nba_analytics.team_defense_game_summary
  WHERE game_date < @end_date AND game_date >= @window_start
),
last15 AS (
  SELECT t.game_date, t.season, t.team, h.points_allowed, h.opp_fgm, h.opp_fga, h.opp_fg3m, h.opp_fg3a,
         h.opp_fta, h.opp_possessions
  FROM targets AS t
  JOIN history AS h ON h.team = t.team AND h.season = t.season AND h.game_date < t.game_date
  WHERE TRUE  -- BigQuery accepts QUALIFY only with a WHERE, GROUP BY or HAVING clause
  QUALIFY ROW_NUMBER() OVER (PARTITION BY t.game_date, t.team ORDER BY h.game_date DESC) <= 15
),
team_agg AS (
  SELECT
    game_date, season, team, COUNT(*) AS games_in_window,
    ROUND(AVG(points_allowed), 3) AS points_allowed_avg,
    ROUND(SAFE_DIVIDE(SUM(opp_fgm), SUM(opp_fga)), 4) AS fg_pct_allowed,
    ROUND(SAFE_DIVIDE(SUM(opp_fg3m), SUM(opp_fg3a)), 4) AS fg3_pct_allowed,
    ROUND(SAFE_DIVIDE(SUM(opp_fta), SUM(opp_fga)), 4) AS ft_rate_allowed,
    ROUND(SAFE_DIVIDE(10000 * SUM(points_allowed), SUM(CAST(ROUND(opp_possessions * 100) AS INT64))), 2) AS defensive_rating
  FROM last15
  GROUP BY game_date, season, team
),
league AS (
  SELECT
    d.game_date,
    ROUND(AVG(h.points_allowed), 3) AS league_points_allowed_avg,
    ROUND(SAFE_DIVIDE(SUM(h.opp_fgm), SUM(h.opp_fga)), 4) AS league_fg_pct_allowed,
    ROUND(SAFE_DIVIDE(SUM(h.opp_fg3m), SUM(h.opp_fg3a)), 4) AS league_fg3_pct_allowed,
    ROUND(SAFE_DIVIDE(SUM(h.opp_fta), SUM(h.opp_fga)), 4) AS league_ft_rate_allowed,
    ROUND(SAFE_DIVIDE(10000 * SUM(h.points_allowed), SUM(CAST(ROUND(h.opp_possessions * 100) AS INT64))), 2) AS league_defensive_rating
  FROM (SELECT DISTINCT game_date, season FROM targets) AS d
  JOIN history AS h
    ON h.season = d.season AND h.game_date < d.game_date AND h.game_date >= DATE_SUB(d.game_date, INTERVAL 30 DAY)
  GROUP BY d.game_date
)
SELECT
  a.game_date, a.season, a.team, a.games_in_window,
  a.points_allowed_avg, a.fg_pct_allowed, a.fg3_pct_allowed, a.ft_rate_allowed, a.defensive_rating,
  l.league_points_allowed_avg, l.league_fg_pct_allowed, l.league_fg3_pct_allowed, l.league_ft_rate_allowed,
  l.league_defensive_rating,
  ROUND(a.points_allowed_avg - l.league_points_allowed_avg, 3) AS points_allowed_vs_league,
  ROUND(a.fg_pct_allowed - l.league_fg_pct_allowed, 4) AS fg_pct_allowed_vs_league,
  ROUND(a.defensive_rating - l.league_defensive_rating, 2) AS defensive_rating_vs_league
FROM team_agg AS a
LEFT JOIN league AS l ON l.game_date = a.game_date
