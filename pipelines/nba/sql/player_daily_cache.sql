-- player_daily_cache: per player whose latest team plays on a date, his averages before tip-off:
-- season-to-date (every game of his in the date's season strictly before the date, whichever team
-- he played for: the spec's `season_to_date` window on player_game_summary), and over his last 5
-- and last 10 of those games; his team's pace and offensive rating over the 30 calendar days before
-- the date (`days: 30` on team_offense_game_summary); and the date's shot-zone row. The date's own
-- games are never read: these are pre-game features. Players with fewer than 3 games are left out;
-- fewer than 10 are kept and flagged as a low sample.
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
  SELECT game_date, season, team, player_id, player_lookup, player_name, minutes, points, rebounds, assists
  FROM nba_analytics.player_game_summary
  -- @window_start: the earliest partition any declared window reads (pruned scan); the running
  -- aggregates below are per season, so they only ever combine the date's own season.
  WHERE game_date < @end_date AND game_date >= @window_start
),
running AS (
  -- Set-based: one pass over each player's games of the season in order, with running
  -- aggregates up to and including each game, instead of re-reading every earlier game for
  -- every date (quadratic in the season's length). A game's figures are the state "after it";
  -- the dates a state serves are those after it up to and including his next game.
  SELECT
    season, player_id, team, player_lookup, player_name, game_date AS last_played_date,
    LEAD(game_date) OVER player_order AS next_played_date,
    COUNT(*) OVER (player_order ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS games_played,
    ROUND(AVG(CAST(ROUND(minutes * 100) AS INT64))
            OVER (player_order ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) / 100, 3) AS season_minutes_avg,
    ROUND(AVG(points) OVER (player_order ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 3) AS season_points_avg,
    ROUND(AVG(rebounds) OVER (player_order ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 3)
      AS season_rebounds_avg,
    ROUND(AVG(assists) OVER (player_order ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 3)
      AS season_assists_avg,
    ROUND(AVG(CAST(ROUND(minutes * 100) AS INT64))
            OVER (player_order ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) / 100, 3) AS l5_minutes_avg,
    ROUND(AVG(points) OVER (player_order ROWS BETWEEN 4 PRECEDING AND CURRENT ROW), 3) AS l5_points_avg,
    ROUND(AVG(CAST(ROUND(minutes * 100) AS INT64))
            OVER (player_order ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) / 100, 3) AS l10_minutes_avg,
    ROUND(AVG(points) OVER (player_order ROWS BETWEEN 9 PRECEDING AND CURRENT ROW), 3) AS l10_points_avg,
    ROUND(AVG(rebounds) OVER (player_order ROWS BETWEEN 9 PRECEDING AND CURRENT ROW), 3) AS l10_rebounds_avg,
    ROUND(AVG(assists) OVER (player_order ROWS BETWEEN 9 PRECEDING AND CURRENT ROW), 3) AS l10_assists_avg
  FROM history
  -- Latest last: by date, and on one date (two teams in a day) the alphabetically first team.
  WINDOW player_order AS (PARTITION BY player_id, season ORDER BY game_date, team DESC)
),
agg AS (
  SELECT d.game_date, r.* EXCEPT (next_played_date)
  FROM (SELECT DISTINCT game_date, season FROM targets) AS d
  JOIN running AS r
    ON r.season = d.season AND r.last_played_date < d.game_date
   AND (r.next_played_date IS NULL OR r.next_played_date >= d.game_date)
  -- On his last date before the target date, only his last row (several rows on one date).
  WHERE r.games_played >= 3
    AND (r.next_played_date IS NULL OR r.next_played_date > r.last_played_date)
),
team_form AS (
  SELECT
    t.game_date, t.team,
    ROUND(AVG(CAST(ROUND(o.pace * 100) AS INT64)) / 100, 3) AS team_pace_30d,
    ROUND(AVG(CAST(ROUND(o.offensive_rating * 100) AS INT64)) / 100, 3) AS team_offensive_rating_30d
  FROM targets AS t
  JOIN nba_analytics.team_offense_game_summary AS o
    ON o.team = t.team AND o.season = t.season
   AND o.game_date < t.game_date AND o.game_date >= DATE_SUB(t.game_date, INTERVAL 30 DAY)
  WHERE o.game_date < @end_date AND o.game_date >= @window_start
  GROUP BY t.game_date, t.team
)
SELECT
  a.game_date, a.season, a.player_id, a.player_lookup, a.player_name, a.team, a.last_played_date,
  a.games_played, a.games_played < 10 AS low_sample,
  a.season_minutes_avg, a.season_points_avg, a.season_rebounds_avg, a.season_assists_avg,
  a.l5_minutes_avg, a.l5_points_avg, a.l10_minutes_avg, a.l10_points_avg, a.l10_rebounds_avg, a.l10_assists_avg,
  f.team_pace_30d, f.team_offensive_rating_30d,
  z.points_per_shot_l10, z.fg3a_share_l10, z.fta_rate_l10
FROM agg AS a
JOIN targets AS t ON t.game_date = a.game_date AND t.team = a.team
LEFT JOIN team_form AS f ON f.game_date = a.game_date AND f.team = a.team
LEFT JOIN nba_precompute.player_shot_zone_analysis AS z
  ON z.game_date = a.game_date AND z.player_id = a.player_id AND z.team = a.team
 AND z.game_date BETWEEN @start_date AND @end_date
