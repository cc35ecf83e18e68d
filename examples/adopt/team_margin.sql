-- Each team's points margin in its game, from the team_points partition of the same date.
SELECT
  t.game_date,
  t.game_id,
  t.team,
  t.points - o.points AS margin,
  @backfill_mode AS backfill_mode
FROM adopt_analytics.team_points AS t
JOIN adopt_analytics.team_points AS o
  ON o.game_date = t.game_date AND o.game_id = t.game_id AND o.team != t.team
WHERE t.game_date BETWEEN @start_date AND @end_date
