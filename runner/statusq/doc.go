// Package statusq delivers commit statuses to forges asynchronously.
//
// The run lifecycle calls Queue.Enqueue, which never blocks on the network:
// it records the status in a bounded in-memory queue and returns. Worker
// goroutines owned by the Queue deliver statuses through a Reporter (the
// scm/github and scm/gitea reporters satisfy it), retrying failures with
// exponential backoff.
//
// Statuses are keyed by (repository, commit, context). Per key only the
// newest status matters to a forge, so the queue coalesces: a status that
// arrives while an older one of the same key is still waiting replaces it,
// and a status still being retried is abandoned as soon as a newer one of
// its key arrives. One key is delivered by at most one worker at a time, so
// an earlier state can never overwrite a later one on the forge. When the
// queue holds Options.MaxPending keys, enqueueing a new key drops the
// oldest waiting one (logged and passed to Options.OnDrop).
//
// Close stops intake and drains the queue within the caller's deadline.
package statusq
