-- Schedules of a repository's branch: cron ones (kind 'cron', spec in
-- timezone) and one-off runs at a time (kind 'once'). next_at is the next
-- tick (Unix µs), NULL once a one-off run has fired or been skipped.
-- Keep in step with 0005_schedules.postgres.sql.
CREATE TABLE schedules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id    INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    spec       TEXT    NOT NULL DEFAULT '',
    timezone   TEXT    NOT NULL DEFAULT 'UTC',
    branch     TEXT    NOT NULL,
    commit_sha TEXT    NOT NULL DEFAULT '',
    inputs     TEXT    NOT NULL DEFAULT '{}',
    missed     TEXT    NOT NULL DEFAULT 'run',
    next_at    INTEGER,
    created_by TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    UNIQUE (repo_id, name)
);
CREATE INDEX schedules_next ON schedules (next_at);

-- One row per tick a server claimed: the durable claim. A tick's run
-- links it (state 'started') in the transaction that creates the run.
CREATE TABLE schedule_ticks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id     INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    tick_at         INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'claimed',
    claimed_by      TEXT    NOT NULL DEFAULT '',
    claimed_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    error           TEXT    NOT NULL DEFAULT '',
    run_id          INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    UNIQUE (schedule_id, tick_at)
);
CREATE INDEX schedule_ticks_state ON schedule_ticks (state, next_attempt_at);

ALTER TABLE runs ADD COLUMN schedule TEXT NOT NULL DEFAULT '';
