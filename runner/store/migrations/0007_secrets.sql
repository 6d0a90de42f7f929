-- Pipeline secrets (runner/secretbox seals value; the store never holds
-- it in the clear). repo_id 0 holds the global secrets, which every
-- repository sees unless it has its own of the same name. events,
-- branches and environments are JSON arrays limiting where the secret is
-- given out; empty means anywhere.
CREATE TABLE secrets (
    repo_id      BIGINT NOT NULL,
    name         TEXT   NOT NULL,
    value        TEXT   NOT NULL,
    events       TEXT   NOT NULL DEFAULT '[]',
    branches     TEXT   NOT NULL DEFAULT '[]',
    environments TEXT   NOT NULL DEFAULT '[]',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    updated_by   TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (repo_id, name)
);
