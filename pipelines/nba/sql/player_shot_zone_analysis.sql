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
team_dates AS (
  -- Each team's game dates in order: the date 20 games back (the start of the window of a date
  -- after this one), the next game date, and the date of the 20th game after (when this date
  -- leaves the team's window).
  SELECT
    season, team, past_date,
    LAG(past_date, 20) OVER team_order AS cutoff,
    LEAD(past_date) OVER team_order AS next_date,
    LEAD(past_date, 20) OVER team_order AS leaves
  FROM (SELECT DISTINCT season, team, game_date AS past_date FROM history) AS d
  WINDOW team_order AS (PARTITION BY season, team ORDER BY past_date)
),
team_window AS (
  -- A target team's window is its last 20 dates before the date: those after `cutoff`.
  SELECT t.game_date, t.season, t.team, w.cutoff
  FROM targets AS t
  JOIN team_dates AS w
    ON w.team = t.team AND w.season = t.season
   AND w.past_date < t.game_date AND (w.next_date IS NULL OR w.next_date >= t.game_date)
),
league_window AS (
  -- A date is in some team's last 20 games before a target date until the last of its teams
  -- has played 20 more games after it (NULL: never, within the data read).
  SELECT season, past_date, IF(COUNTIF(leaves IS NULL) > 0, NULL, MAX(leaves)) AS leaves
  FROM team_dates
  GROUP BY season, past_date
),
running AS (
  -- Set-based: each player's games for one team in order, with running totals; a window's
  -- totals are the difference of two of them, instead of re-reading 20 games per date.
  SELECT
    season, team, player_id, player_lookup, game_date,
    LEAD(game_date) OVER player_team AS next_date,
    COUNT(*) OVER (player_team ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS games,
    SUM(fga) OVER (player_team ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS fga,
    SUM(fg3a) OVER (player_team ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS fg3a,
    SUM(fta) OVER (player_team ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS fta,
    SUM(points) OVER (player_team ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS points,
    SUM(fga) OVER (player_team ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS fga_10,
    SUM(fg3a) OVER (player_team ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS fg3a_10,
    SUM(fta) OVER (player_team ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS fta_10,
    SUM(points) OVER (player_team ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS points_10
  FROM history
  WINDOW player_team AS (PARTITION BY season, team, player_id ORDER BY game_date)
),
in_window AS (
  -- Per target team and player: his last game for the team before the date (inside the window)
  -- and his last one on or before the window's start; their difference is the window.
  SELECT
    w.game_date, w.season, w.team, hi.player_id, hi.player_lookup, hi.game_date AS last_date,
    hi.games - COALESCE(lo.games, 0) AS games_l20,
    hi.fga - COALESCE(lo.fga, 0) AS fga_l20, hi.fg3a - COALESCE(lo.fg3a, 0) AS fg3a_l20,
    hi.fta - COALESCE(lo.fta, 0) AS fta_l20, hi.points - COALESCE(lo.points, 0) AS points_l20,
    hi.fga_10, hi.fg3a_10, hi.fta_10, hi.points_10
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
  -- A player belongs to the team of his latest appearance inside every team's last 20 games
  -- (on one date, the alphabetically first team): a later one elsewhere takes him off this team.
  SELECT DISTINCT i.game_date, i.team, i.player_id
  FROM in_window AS i
  JOIN history AS p
    ON p.player_id = i.player_id AND p.season = i.season AND p.game_date < i.game_date
   AND (p.game_date > i.last_date OR (p.game_date = i.last_date AND p.team < i.team))
  JOIN league_window AS l ON l.season = p.season AND l.past_date = p.game_date
  WHERE l.leaves IS NULL OR l.leaves >= i.game_date
),
agg AS (
  SELECT
    i.game_date, i.season, i.team, i.player_id, i.player_lookup,
    LEAST(i.games_l20, 10) AS games_l10, i.games_l20,
    IF(i.games_l20 <= 10, i.fga_l20, i.fga_10) AS fga_l10, IF(i.games_l20 <= 10, i.fg3a_l20, i.fg3a_10) AS fg3a_l10,
    IF(i.games_l20 <= 10, i.fta_l20, i.fta_10) AS fta_l10, IF(i.games_l20 <= 10, i.points_l20, i.points_10) AS points_l10,
    i.fga_l20, i.fg3a_l20, i.fta_l20, i.points_l20
  FROM in_window AS i
  LEFT JOIN moved_on AS m ON m.game_date = i.game_date AND m.team = i.team AND m.player_id = i.player_id
  WHERE m.player_id IS NULL
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
