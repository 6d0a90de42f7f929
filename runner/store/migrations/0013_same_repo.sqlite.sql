-- Pull requests from the base repository itself (issue 9): same_repo is 1
-- when the forge's payload said the pull request's head repository is the
-- base repository, 0 for forks, for other events and for runs from before
-- it was recorded (so those count as forks: read-only caches). Keep in
-- step with the PostgreSQL file.
ALTER TABLE runs ADD COLUMN same_repo INTEGER NOT NULL DEFAULT 0;
