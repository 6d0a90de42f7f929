// Package e2e runs the real runnel binary as separate processes against
// real git repositories, the Docker engine and HTTP: a git push through
// the post-receive hook, signed GitHub webhooks, and a server killed with
// SIGKILL in the middle of a run. It has only tests.
package e2e
