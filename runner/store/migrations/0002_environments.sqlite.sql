-- Deployment environments declared on the server for a repository, with
-- the branches and tags they accept (JSON arrays of globs). Only stages of
-- a declared environment are deployments, which keeps the environment
-- label of the DORA metrics bounded by what admins declare.
CREATE TABLE environments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id    INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    branches   TEXT    NOT NULL DEFAULT '[]',
    tags       TEXT    NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    UNIQUE (repo_id, name)
);
