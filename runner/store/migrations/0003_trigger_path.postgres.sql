-- Trigger path (issue 11). Keep in step with 0003_trigger_path.sqlite.sql,
-- which explains the columns.
ALTER TABLE repos ADD COLUMN generic_hook BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE repos ADD COLUMN forge_url TEXT NOT NULL DEFAULT '';
CREATE INDEX repos_hook_token ON repos (hook_token_hash);

ALTER TABLE runs ADD COLUMN source_url TEXT NOT NULL DEFAULT '';

ALTER TABLE deliveries ADD COLUMN repo_id BIGINT REFERENCES repos(id) ON DELETE CASCADE;
ALTER TABLE deliveries ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
UPDATE deliveries SET state = 'failed',
    error = 'not replayed: stored before deliveries were bound to the repository that verified them'
    WHERE state = 'received';
ALTER TABLE deliveries DROP CONSTRAINT deliveries_source_delivery_id_key;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_repo_source_delivery_key UNIQUE (repo_id, source, delivery_id);
DROP INDEX deliveries_state;
CREATE INDEX deliveries_due ON deliveries (state, repo_id, next_attempt_at, id);
