-- Where a pull request from a fork takes its pipeline file (issue 10,
-- docs/secrets.md): fork_pipeline_base 1 reads it from the base branch,
-- 0 (the default) from the pull request's head. Keep in step with the
-- PostgreSQL file.
ALTER TABLE repos ADD COLUMN fork_pipeline_base INTEGER NOT NULL DEFAULT 0;
