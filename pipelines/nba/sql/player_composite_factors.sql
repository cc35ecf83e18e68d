-- player_composite_factors: per player in the date's upcoming_player_game_context, three
-- adjustment factors read from same-date partitions only: fatigue (rest and schedule density),
-- matchup (the opponent's defense vs the league, from team_defense_zone_analysis) and usage
-- spike (L5 minutes vs L10 minutes), plus shot quality from player_shot_zone_analysis.
WITH ctx AS (
  SELECT * FROM nba_analytics.upcoming_player_game_context WHERE game_date BETWEEN @start_date AND @end_date
),
team_ctx AS (
  SELECT * FROM nba_analytics.upcoming_team_game_context WHERE game_date BETWEEN @start_date AND @end_date
),
defense AS (
  SELECT * FROM nba_precompute.team_defense_zone_analysis WHERE game_date BETWEEN @start_date AND @end_date
),
shots AS (
  SELECT * FROM nba_precompute.player_shot_zone_analysis WHERE game_date BETWEEN @start_date AND @end_date
),
factors AS (
  SELECT
    c.game_date, c.season, c.player_id, c.player_lookup, c.player_name, c.team, c.opponent, c.is_home,
    c.points_line,
    tc.rest_advantage,
    ROUND(LEAST(1.0, CAST(IF(c.back_to_back, 0.4, 0.0) + 0.1 * COALESCE(tc.games_last_7_days, 0)
                     + 0.02 * COALESCE(tc.games_last_14_days, 0) AS FLOAT64)), 4) AS fatigue_score,
    ROUND(SAFE_DIVIDE(d.points_allowed_avg - d.league_points_allowed_avg, d.league_points_allowed_avg), 4)
      AS matchup_score,
    d.defensive_rating AS opponent_defensive_rating,
    ROUND(SAFE_DIVIDE(c.l5_minutes - c.l10_minutes, c.l10_minutes), 4) AS usage_spike,
    s.points_per_shot_l10 AS shot_quality
  FROM ctx AS c
  LEFT JOIN team_ctx AS tc ON tc.game_date = c.game_date AND tc.team = c.team
  LEFT JOIN defense AS d ON d.game_date = c.game_date AND d.team = c.opponent
  LEFT JOIN shots AS s ON s.game_date = c.game_date AND s.player_id = c.player_id AND s.team = c.team
)
SELECT
  *,
  ROUND(COALESCE(matchup_score, 0) + 0.5 * COALESCE(usage_spike, 0) - 0.2 * fatigue_score, 4) AS composite_score
FROM factors
