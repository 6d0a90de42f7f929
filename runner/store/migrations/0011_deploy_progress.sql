-- A deploy stage (pipeline deploy: block) reports its release while it
-- runs: the deployment row of its run and environment is made when the
-- release starts (result '' = in progress) and carries the provider, the
-- versions, the phase and the traffic on the new version; outcome is the
-- provider's (succeeded, failed, rolled_back). One row per run and
-- environment: the unique index makes a re-delivered stage find the row
-- its earlier attempt made (rows recorded only at a stage's end have no
-- provider and are not in it).
ALTER TABLE deployments ADD COLUMN provider TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN version TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN from_version TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN phase TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN traffic INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX deployments_run_env ON deployments (run_id, environment) WHERE provider <> '';
