// Package github turns GitHub webhooks into scm.Events (push, tag push,
// pull_request) and reports commit statuses, both through go-github.
// Only the SHA-256 signature (X-Hub-Signature-256) is accepted; the legacy
// SHA-1 X-Hub-Signature alone is refused.
package github
