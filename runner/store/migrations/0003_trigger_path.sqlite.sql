-- Trigger path (issue 11): where a run's code comes from, which hooks a
-- repository accepts, and deliveries bound for ever to the repository whose
-- secret verified them. Keep in step with 0003_trigger_path.postgres.sql.

-- generic_hook: a forge repository (github, gitea, gitlab) also accepts the
-- generic hook with its hook token. forge_url: the forge's base URL as named
-- when the repository was added (e.g. https://github.com); without a
-- clone_url the server fetches only from this host.
ALTER TABLE repos ADD COLUMN generic_hook INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repos ADD COLUMN forge_url TEXT NOT NULL DEFAULT '';
CREATE INDEX repos_hook_token ON repos (hook_token_hash);

-- The source a run was resolved from once (clone URL or bare path); the
-- commit and ref are commit_sha and ref. Reruns and dispatch use it.
ALTER TABLE runs ADD COLUMN source_url TEXT NOT NULL DEFAULT '';

-- Deliveries gain repo_id (the verified repository; deduplication is per
-- repository) and retry bookkeeping. SQLite cannot change a table's unique
-- constraint in place, so the table is rebuilt. A delivery still waiting
-- from before this migration names its repository only in its unverified
-- payload: it is not replayed but ends failed, saying why.
CREATE TABLE deliveries_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id         INTEGER REFERENCES repos(id) ON DELETE CASCADE,
    source          TEXT    NOT NULL,
    delivery_id     TEXT    NOT NULL,
    event           TEXT    NOT NULL DEFAULT '',
    payload         TEXT    NOT NULL DEFAULT '',
    state           TEXT    NOT NULL DEFAULT 'received',
    error           TEXT    NOT NULL DEFAULT '',
    run_id          INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    received_at     INTEGER NOT NULL,
    processed_at    INTEGER,
    UNIQUE (repo_id, source, delivery_id)
);
INSERT INTO deliveries_new (id, repo_id, source, delivery_id, event, payload, state, error, run_id, received_at, processed_at)
SELECT id, NULL, source, delivery_id, event, payload,
       CASE WHEN state = 'received' THEN 'failed' ELSE state END,
       CASE WHEN state = 'received' THEN 'not replayed: stored before deliveries were bound to the repository that verified them' ELSE error END,
       run_id, received_at, processed_at
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (state, repo_id, next_attempt_at, id);
