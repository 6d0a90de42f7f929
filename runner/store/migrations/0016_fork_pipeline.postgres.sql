-- Keep in step with 0016_fork_pipeline.sqlite.sql, which explains the column.
ALTER TABLE repos ADD COLUMN fork_pipeline_base BOOLEAN NOT NULL DEFAULT FALSE;
