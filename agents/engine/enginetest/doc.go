// Package enginetest holds the behavioural tests every engine.Engine must
// pass (exit codes, env, output, workspace isolation, stop on timeout and
// cancellation, idempotent Teardown), run by each implementation's own
// tests against the real thing.
package enginetest
