-- team_defense_game_summary: the opponent's offense in a game, seen as this team's defense.
-- Reads only the same dates of nba_raw.team_boxscores; a game whose opponent row is missing
-- yields no defense row (the executor reports such dates as partial raw data).
WITH g AS (
  SELECT
    game_date, season, season_type, game_id, team, opponent, is_home,
    COALESCE(points, 0) AS points,
    COALESCE(fgm, 0) AS fgm, COALESCE(fga, 0) AS fga, COALESCE(fg3m, 0) AS fg3m, COALESCE(fg3a, 0) AS fg3a,
    COALESCE(ftm, 0) AS ftm, COALESCE(fta, 0) AS fta, COALESCE(oreb, 0) AS oreb, COALESCE(dreb, 0) AS dreb,
    COALESCE(tov, 0) AS tov, COALESCE(stl, 0) AS stl, COALESCE(blk, 0) AS blk,
    ROUND(CAST(COALESCE(fga, 0) - COALESCE(oreb, 0) + COALESCE(tov, 0) + 0.44 * COALESCE(fta, 0) AS FLOAT64), 2) AS possessions
  FROM nba_raw.team_boxscores
  WHERE game_date BETWEEN @start_date AND @end_date
)
SELECT
  d.game_date, d.season, d.season_type, d.game_id, d.team, d.opponent, d.is_home,
  o.points AS points_allowed,
  o.fgm AS opp_fgm, o.fga AS opp_fga, o.fg3m AS opp_fg3m, o.fg3a AS opp_fg3a,
  o.ftm AS opp_ftm, o.fta AS opp_fta, o.oreb AS opp_oreb, o.tov AS opp_tov,
  o.possessions AS opp_possessions,
  d.dreb AS dreb, d.stl AS steals, d.blk AS blocks,
  ROUND(SAFE_DIVIDE(o.fgm, o.fga), 4) AS fg_pct_allowed,
  ROUND(SAFE_DIVIDE(o.fg3m, o.fg3a), 4) AS fg3_pct_allowed,
  ROUND(SAFE_DIVIDE(o.fta, o.fga), 4) AS ft_rate_allowed,
  ROUND(SAFE_DIVIDE(100 * o.points, o.possessions), 2) AS defensive_rating
FROM g AS d
JOIN g AS o ON o.game_id = d.game_id AND o.team = d.opponent
