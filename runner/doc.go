// Package runner is the server's run lifecycle: it turns an scm.Event into
// a run (reading and compiling .pipeline.yml at the pushed commit), stores
// the run's stages and steps, publishes ready stages as agents/wire jobs
// through a Bus (the natsbus dispatcher), applies agents' wire updates
// fenced by attempt, and ends runs. Scheduling is event-driven: the DAG of
// a run is re-evaluated when something happens to it (a trigger, an
// update, an approval, a cancel), never by a polling loop. Agents claim
// jobs (HandleClaim) before running them; one watchdog goroutine queues
// again, as a new attempt, a stage whose agent stopped reporting (lease
// loss), which also covers stages left behind by a crashed server.
//
// The files follow the lifecycle's verbs: runner.go (Runner, New, Close),
// trigger.go (Trigger, Rerun: reading and compiling the pipeline into a
// run), schedule.go (re-evaluating a run's DAG and dispatching jobs),
// update.go (applying agents' updates and log chunks, ending stages),
// cancel.go (Cancel, Approve, Reject) and recover.go (Start's recovery of
// a previous process's runs and the lease watchdog).
package runner
