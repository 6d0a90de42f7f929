// Package gitea turns Gitea and Forgejo push and pull request webhooks
// into scm.Events and reports commit statuses through Gitea's REST API.
//
// A request is authentic when X-Gitea-Signature (or X-Forgejo-Signature)
// is the hex HMAC-SHA256 of the raw body under the configured secret.
package gitea
