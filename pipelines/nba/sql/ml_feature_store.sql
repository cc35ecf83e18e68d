-- ml_feature_store: one row per player per date, joining the date's four Phase 4 tables.
-- feature_quality is the share of the eight model features that are present (0-1); bootstrap
-- marks the first 14 days of a season, counted from the season's first game date in
-- nba_raw.schedule (read season-to-date, the spec's window), when lookback windows are short.
WITH factors AS (
  SELECT * FROM nba_precompute.player_composite_factors WHERE game_date BETWEEN @start_date AND @end_date
),
cache AS (
  SELECT * FROM nba_precompute.player_daily_cache WHERE game_date BETWEEN @start_date AND @end_date
),
defense AS (
  SELECT * FROM nba_precompute.team_defense_zone_analysis WHERE game_date BETWEEN @start_date AND @end_date
),
shots AS (
  SELECT * FROM nba_precompute.player_shot_zone_analysis WHERE game_date BETWEEN @start_date AND @end_date
),
season_start AS (
  SELECT season, MIN(game_date) AS first_game_date
  FROM nba_raw.schedule
  WHERE game_date <= @end_date AND game_date >= @window_start
    AND season_type IN ('regular', 'play_in', 'playoffs')
  GROUP BY season
),
joined AS (
  SELECT
    f.game_date, f.season, f.player_id, f.player_lookup, f.player_name, f.team, f.opponent, f.is_home,
    c.season_points_avg, c.l5_points_avg, c.l10_points_avg, c.l10_minutes_avg, c.games_played,
    COALESCE(c.low_sample, TRUE) AS low_sample,
    d.defensive_rating AS opponent_defensive_rating,
    f.matchup_score, f.fatigue_score, f.usage_spike, f.composite_score,
    s.points_per_shot_l10, s.fg3a_share_l10,
    f.points_line,
    DATE_DIFF(f.game_date, ss.first_game_date, DAY) < 14 AS bootstrap
  FROM factors AS f
  LEFT JOIN cache AS c ON c.game_date = f.game_date AND c.player_id = f.player_id
  LEFT JOIN defense AS d ON d.game_date = f.game_date AND d.team = f.opponent
  LEFT JOIN shots AS s ON s.game_date = f.game_date AND s.player_id = f.player_id AND s.team = f.team
  LEFT JOIN season_start AS ss ON ss.season = f.season
)
SELECT
  *,
  ROUND((IF(season_points_avg IS NULL, 0, 1) + IF(l5_points_avg IS NULL, 0, 1) + IF(l10_points_avg IS NULL, 0, 1)
         + IF(opponent_defensive_rating IS NULL, 0, 1) + IF(matchup_score IS NULL, 0, 1)
         + IF(usage_spike IS NULL, 0, 1) + IF(points_per_shot_l10 IS NULL, 0, 1)
         + IF(fg3a_share_l10 IS NULL, 0, 1)) / 8.0, 4) AS feature_quality
FROM joined
