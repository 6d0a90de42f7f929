-- Artifacts, caches and fetched files kept in the artifact store
-- (runner/transfers). A row is 'pending' from the upload grant until the
-- agent commits the upload, then 'ready'; the sweeper deletes rows (and
-- their objects) whose expires_at has passed, pending ones included, so an
-- upload that never commits leaves nothing behind. Keep in step with the
-- PostgreSQL file.
CREATE TABLE transfer_objects (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,              -- artifact, cache, fetch
    scope      TEXT    NOT NULL,              -- run:<id>, repo:<id>, or '' (fetch)
    name       TEXT    NOT NULL,              -- stage ID, cache key, or sha256
    store_key  TEXT    NOT NULL UNIQUE,
    size       INTEGER NOT NULL,
    sha256     TEXT    NOT NULL,
    state      TEXT    NOT NULL,              -- pending, ready
    run_id     INTEGER,                       -- artifacts: the run
    attempt    INTEGER NOT NULL DEFAULT 0,    -- artifacts: the stage attempt
    created_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX transfer_objects_name ON transfer_objects (kind, scope, name, state);
CREATE INDEX transfer_objects_expires ON transfer_objects (expires_at);
CREATE INDEX transfer_objects_run ON transfer_objects (run_id);
