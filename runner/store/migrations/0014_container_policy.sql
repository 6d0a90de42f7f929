-- Container permissions an admin grants a repository (issue 10): a comma
-- separated list of pipeline.Permission names; '' grants none.
ALTER TABLE repos ADD COLUMN allow_container TEXT NOT NULL DEFAULT '';
