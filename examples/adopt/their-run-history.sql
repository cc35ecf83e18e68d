-- The users' run-history table as their processors created it (nba_reference.processor_run_history,
-- names and types from their platform), and two rows their own code wrote. Run it first on a
-- rehearsal warehouse: `backfill` must adopt the table as it is.
CREATE SCHEMA IF NOT EXISTS nba_reference;

CREATE TABLE IF NOT EXISTS nba_reference.processor_run_history (
  processor_name STRING NOT NULL,
  run_id STRING NOT NULL,
  season_year INT64,
  status STRING NOT NULL,
  duration_seconds FLOAT64,
  records_processed INT64,
  records_created INT64,
  records_updated INT64,
  records_skipped INT64,
  backfill_mode BOOL,
  force_reprocess BOOL,
  test_mode BOOL,
  execution_host STRING,
  triggered_by STRING,
  errors JSON,
  warnings JSON,
  summary JSON,
  data_date DATE NOT NULL,
  started_at TIMESTAMP NOT NULL,
  processed_at TIMESTAMP,
  phase STRING,
  output_table STRING,
  output_dataset STRING,
  trigger_source STRING,
  parent_processor STRING,
  upstream_dependencies JSON,
  dependency_check_passed BOOL,
  missing_dependencies JSON,
  stale_dependencies JSON,
  alert_sent BOOL,
  retry_attempt INT64,
  skipped BOOL,
  skip_reason STRING,
  failure_category STRING
)
PARTITION BY data_date
CLUSTER BY processor_name, status, season_year;

INSERT INTO nba_reference.processor_run_history
  (processor_name, run_id, season_year, status, duration_seconds, records_processed, backfill_mode,
   triggered_by, data_date, started_at, processed_at, phase, output_table, output_dataset, retry_attempt,
   skipped)
VALUES
  ('PlayerGameSummaryProcessor', 'live-20230406', 2022, 'success', 141.2, 256, FALSE, 'pubsub',
   DATE '2023-04-05', TIMESTAMP '2023-04-06 09:12:03+00', TIMESTAMP '2023-04-06 09:14:24+00',
   'phase_3_analytics', 'player_game_summary', 'nba_analytics', 0, FALSE),
  ('TeamOffenseGameSummaryProcessor', 'live-20230406', 2022, 'failed', 12.5, 0, FALSE, 'pubsub',
   DATE '2023-04-05', TIMESTAMP '2023-04-06 09:14:30+00', TIMESTAMP '2023-04-06 09:14:43+00',
   'phase_3_analytics', 'team_offense_game_summary', 'nba_analytics', 0, FALSE);
