// Package runner is the server's run lifecycle: it turns an scm.Event into
// a run (reading and compiling .pipeline.yml at the pushed commit), stores
// the run's stages and steps, schedules ready stages onto agents through a
// Bus, applies agents' updates fenced by attempt, and ends runs. Scheduling
// is event-driven: the DAG of a run is re-evaluated when something happens
// to it (a trigger, an update, an approval, a cancel), never by a polling
// loop. One watchdog goroutine ends or re-queues stages whose agent stopped
// reporting (lease loss), which also covers stages left behind by a
// crashed server.
package runner
