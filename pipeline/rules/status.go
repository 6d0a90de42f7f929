package rules

// Status is how a step, stage or run ended, spelled once for everyone:
// the stage executor, the wire protocol, the store, the API and
// `runnel run --summary-json`.
type Status string

// Final statuses.
const (
	Success  Status = "success"
	Failure  Status = "failure"  // a step exited non-zero
	Timeout  Status = "timeout"  // a step or stage ran out of time (the server stores failure, reason timeout)
	Error    Status = "error"    // the engine, agent or configuration failed, not the step
	Canceled Status = "canceled" // stopped by a person, a newer run or a lost lease
	Skipped  Status = "skipped"  // never started
)

// Failed reports whether s counts as a failure of its step or stage
// (skipped is not a failure by itself).
func (s Status) Failed() bool {
	switch s {
	case Failure, Timeout, Error, Canceled:
		return true
	}
	return false
}
