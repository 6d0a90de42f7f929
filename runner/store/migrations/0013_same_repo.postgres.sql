-- Pull requests from the base repository itself (issue 9). Keep in step
-- with 0013_same_repo.sqlite.sql, which explains the column.
ALTER TABLE runs ADD COLUMN same_repo BOOLEAN NOT NULL DEFAULT FALSE;
