-- Why a run could not start (issue 11): the positioned diagnostics of a
-- pipeline that did not compile, or the reason its source could not be
-- read, stored with the run in the transaction that creates it, so that
-- the run is never seen without them. JSON array; '' when none. Runs from
-- before this migration keep theirs next to the logs (runner.Diagnostics).
ALTER TABLE runs ADD COLUMN diagnostics TEXT NOT NULL DEFAULT '';
