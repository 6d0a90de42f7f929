-- Approvals of untrusted pull requests (issue 10, runner/trust): a
-- maintainer approved the head commit head_sha of a fork's pull request
-- to repo_id, so its stages that ask for secrets or deploy may run. Bound
-- to the commit: a new push is a new head and needs a new approval.
-- run_id is the run the approval was given on.
CREATE TABLE pr_approvals (
    repo_id     BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    head_sha    TEXT   NOT NULL,
    approved_by TEXT   NOT NULL,
    approved_at BIGINT NOT NULL,
    run_id      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (repo_id, head_sha)
);
