-- Crash-safe dispatch and server-owned attempts (issue 8).
-- published: the highest attempt of the stage whose job the bus accepted;
-- a queued stage with published < attempt has a job that may never have
-- reached the bus, and the server publishes it again at start.
-- claim: the token of the agent delivery that claimed the current attempt
-- ('' while nobody did); a claim is granted once per attempt.
ALTER TABLE stages ADD COLUMN published INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stages ADD COLUMN claim TEXT NOT NULL DEFAULT '';
