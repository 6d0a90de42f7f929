-- Runnel schema, SQLite dialect. Keep in step with 0001_init.postgres.sql:
-- the two differ only in identity columns and boolean types.
-- Timestamps are Unix microseconds (UTC) in integer columns, NULL when unset.

CREATE TABLE repos (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL UNIQUE,
    forge            TEXT    NOT NULL,
    clone_url        TEXT    NOT NULL DEFAULT '',
    webhook_secret   TEXT    NOT NULL DEFAULT '',
    hook_token_hash  TEXT    NOT NULL DEFAULT '',
    badge_token_hash TEXT    NOT NULL DEFAULT '',
    private          INTEGER NOT NULL DEFAULT 0,
    default_branch   TEXT    NOT NULL DEFAULT 'main',
    cancel_previous  INTEGER NOT NULL DEFAULT 0,
    status_api_url   TEXT    NOT NULL DEFAULT '',
    status_token     TEXT    NOT NULL DEFAULT '',
    last_run_number  INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id        INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    number         INTEGER NOT NULL,
    event          TEXT    NOT NULL,
    ref            TEXT    NOT NULL DEFAULT '',
    branch         TEXT    NOT NULL DEFAULT '',
    tag            TEXT    NOT NULL DEFAULT '',
    commit_sha     TEXT    NOT NULL DEFAULT '',
    commit_message TEXT    NOT NULL DEFAULT '',
    commit_time    INTEGER,
    author         TEXT    NOT NULL DEFAULT '',
    inputs         TEXT    NOT NULL DEFAULT '{}',
    plan           TEXT    NOT NULL DEFAULT '',
    status         TEXT    NOT NULL,
    reason         TEXT    NOT NULL DEFAULT '',
    pending_reason TEXT    NOT NULL DEFAULT '',
    trigger_kind   TEXT    NOT NULL,
    parent_id      INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    created_at     INTEGER NOT NULL,
    queued_at      INTEGER,
    started_at     INTEGER,
    finished_at    INTEGER,
    UNIQUE (repo_id, number)
);
CREATE INDEX runs_repo_branch ON runs (repo_id, branch, id);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE stages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_key      TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    position       INTEGER NOT NULL,
    status         TEXT    NOT NULL,
    reason         TEXT    NOT NULL DEFAULT '',
    pending_reason TEXT    NOT NULL DEFAULT '',
    attempt        INTEGER NOT NULL DEFAULT 0,
    agent          TEXT    NOT NULL DEFAULT '',
    needs          TEXT    NOT NULL DEFAULT '[]',
    environment    TEXT    NOT NULL DEFAULT '',
    concurrency    TEXT    NOT NULL DEFAULT '',
    approval       TEXT    NOT NULL DEFAULT 'none',
    approved_by    TEXT    NOT NULL DEFAULT '',
    queued_at      INTEGER,
    started_at     INTEGER,
    finished_at    INTEGER,
    UNIQUE (run_id, stage_key)
);
CREATE INDEX stages_status ON stages (status);

CREATE TABLE steps (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    stage_id      INTEGER NOT NULL REFERENCES stages(id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    position      INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    exit_code     INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    allow_failure INTEGER NOT NULL DEFAULT 0,
    log_key       TEXT    NOT NULL DEFAULT '',
    log_size      INTEGER NOT NULL DEFAULT 0,
    started_at    INTEGER,
    finished_at   INTEGER,
    UNIQUE (stage_id, position)
);

CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source       TEXT    NOT NULL,
    delivery_id  TEXT    NOT NULL,
    event        TEXT    NOT NULL DEFAULT '',
    payload      TEXT    NOT NULL DEFAULT '',
    state        TEXT    NOT NULL DEFAULT 'received',
    error        TEXT    NOT NULL DEFAULT '',
    run_id       INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    received_at  INTEGER NOT NULL,
    processed_at INTEGER,
    UNIQUE (source, delivery_id)
);
CREATE INDEX deliveries_state ON deliveries (state, id);

CREATE TABLE deployments (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id                   INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    environment               TEXT    NOT NULL,
    run_id                    INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    stage_id                  INTEGER REFERENCES stages(id) ON DELETE SET NULL,
    commit_sha                TEXT    NOT NULL DEFAULT '',
    commit_time               INTEGER,
    started_at                INTEGER NOT NULL,
    finished_at               INTEGER,
    result                    TEXT    NOT NULL DEFAULT '',
    rolled_back_deployment_id INTEGER REFERENCES deployments(id) ON DELETE SET NULL
);
CREATE INDEX deployments_repo_env ON deployments (repo_id, environment, id);

CREATE TABLE agents (
    name      TEXT    PRIMARY KEY,
    labels    TEXT    NOT NULL DEFAULT '{}',
    capacity  INTEGER NOT NULL DEFAULT 0,
    version   TEXT    NOT NULL DEFAULT '',
    state     TEXT    NOT NULL DEFAULT '',
    last_seen INTEGER NOT NULL
);

CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    hash       TEXT    NOT NULL UNIQUE,
    admin      INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
