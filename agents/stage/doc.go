// Package stage executes compiled stages on an engine.Engine: Setup, the
// steps in order with timeouts, retries and allow_failure, then Teardown
// (always, on a context that outlives cancellation). It also schedules a
// whole Plan as a DAG for `runnel run`, where a stage starts as soon as all
// of its needs are done. The agent uses the same Executor for stages it
// receives over NATS; results and events are plain values so they can be
// published as they are.
package stage
