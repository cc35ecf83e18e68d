-- upcoming_team_game_context: per team playing on a date, its rest and schedule density.
-- Reads nba_raw.schedule over the spec's window: the 14 calendar days before each date (within
-- the date's season) and the date itself. A team with no game in those 14 days (season opener,
-- a long break) has days_rest NULL, which is not a back-to-back.
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
ctx AS (
  SELECT
    g.game_date, g.season, g.season_type, g.game_id, g.team, g.opponent, g.is_home,
    MAX(h.game_date) AS last_game_date,
    COUNTIF(COALESCE(h.game_date >= DATE_SUB(g.game_date, INTERVAL 7 DAY), FALSE)) AS games_last_7_days,
    COUNT(h.game_date) AS games_last_14_days
  FROM team_games AS g
  LEFT JOIN team_games AS h
    ON h.team = g.team AND h.season = g.season
   AND h.game_date < g.game_date AND h.game_date >= DATE_SUB(g.game_date, INTERVAL 14 DAY)
  WHERE g.game_date BETWEEN @start_date AND @end_date
  GROUP BY g.game_date, g.season, g.season_type, g.game_id, g.team, g.opponent, g.is_home
)
SELECT
  c.game_date, c.season, c.season_type, c.game_id, c.team, c.opponent, c.is_home,
  DATE_DIFF(c.game_date, c.last_game_date, DAY) AS days_rest,
  COALESCE(DATE_DIFF(c.game_date, c.last_game_date, DAY) = 1, FALSE) AS back_to_back,
  c.games_last_7_days, c.games_last_14_days,
  DATE_DIFF(o.game_date, o.last_game_date, DAY) AS opponent_days_rest,
  COALESCE(DATE_DIFF(o.game_date, o.last_game_date, DAY) = 1, FALSE) AS opponent_back_to_back,
  DATE_DIFF(c.game_date, c.last_game_date, DAY) - DATE_DIFF(o.game_date, o.last_game_date, DAY) AS rest_advantage
FROM ctx AS c
JOIN ctx AS o ON o.game_id = c.game_id AND o.team = c.opponent
