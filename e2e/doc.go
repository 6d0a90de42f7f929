// Package e2e runs the real runnel binary as separate processes against
// real git repositories, the Docker engine and HTTP: a git push through
// the post-receive hook, signed GitHub webhooks, a remote agent over NATS,
// and a server killed with SIGKILL in the middle of a run. It has only
// tests.
//
// Knobs: RUNNEL_E2E_LEASE sets the server's lease timeout in the SIGKILL
// test (default: the server's, 45s, which lets JetStream redeliver and
// resume the stage; the server refuses one below 35s).
package e2e
