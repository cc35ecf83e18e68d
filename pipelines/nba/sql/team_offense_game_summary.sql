-- team_offense_game_summary: one row per team per game on the game dates in [@start_date, @end_date].
-- Reads only the same dates of nba_raw.team_boxscores, and of nba_raw.player_boxscores for the
-- game's length. Possessions use the common estimate FGA - OREB + TOV + 0.44 * FTA; pace is the
-- average of both teams' possessions per 48 minutes, so an overtime game is not counted as a
-- faster one: the team box scores carry no minutes, so each overtime is read from the players'
-- minutes (a team plays 240 player-minutes in regulation, 25 more per overtime period).
WITH g AS (
  SELECT
    game_date, season, season_type, game_id, team, opponent, is_home,
    COALESCE(points, 0) AS points,
    COALESCE(fgm, 0) AS fgm, COALESCE(fga, 0) AS fga, COALESCE(fg3m, 0) AS fg3m, COALESCE(fg3a, 0) AS fg3a,
    COALESCE(ftm, 0) AS ftm, COALESCE(fta, 0) AS fta, COALESCE(oreb, 0) AS oreb, COALESCE(dreb, 0) AS dreb,
    COALESCE(ast, 0) AS ast, COALESCE(tov, 0) AS tov,
    ROUND(CAST(COALESCE(fga, 0) - COALESCE(oreb, 0) + COALESCE(tov, 0) + 0.44 * COALESCE(fta, 0) AS FLOAT64), 2) AS possessions
  FROM nba_raw.team_boxscores
  WHERE game_date BETWEEN @start_date AND @end_date
),
game_length AS (
  -- Minutes rounded to whole numbers first: the players' minutes are floats and their sum must
  -- not depend on the order rows arrive in.
  SELECT game_id, 48 + 5 * GREATEST(0, CAST(ROUND((MAX(team_minutes) - 240) / 25) AS INT64)) AS minutes
  FROM (
    SELECT game_id, team, SUM(CAST(ROUND(COALESCE(minutes, 0)) AS INT64)) AS team_minutes
    FROM nba_raw.player_boxscores
    WHERE game_date BETWEEN @start_date AND @end_date
    GROUP BY game_id, team
  )
  GROUP BY game_id
)
SELECT
  g.game_date, g.season, g.season_type, g.game_id, g.team, g.opponent, g.is_home,
  g.points, g.fgm, g.fga, g.fg3m, g.fg3a, g.ftm, g.fta, g.oreb, g.dreb, g.ast, g.tov, g.possessions,
  ROUND((g.possessions + o.possessions) / 2 * 48 / COALESCE(l.minutes, 48), 2) AS pace,
  ROUND(SAFE_DIVIDE(100 * g.points, g.possessions), 2) AS offensive_rating,
  ROUND(SAFE_DIVIDE(g.points, 2 * (g.fga + 0.44 * g.fta)), 4) AS true_shooting_pct,
  ROUND(SAFE_DIVIDE(g.fgm, g.fga), 4) AS fg_pct,
  ROUND(SAFE_DIVIDE(g.fg3m, g.fg3a), 4) AS fg3_pct,
  ROUND(SAFE_DIVIDE(g.fgm + 0.5 * g.fg3m, g.fga), 4) AS efg_pct,
  ROUND(SAFE_DIVIDE(g.fta, g.fga), 4) AS ft_rate
FROM g
LEFT JOIN g AS o ON o.game_id = g.game_id AND o.team = g.opponent
LEFT JOIN game_length AS l ON l.game_id = g.game_id
