// Package gitlab turns GitLab push, tag push and merge request webhooks
// into scm.Events and reports commit statuses through GitLab's REST API
// with GitLab's client library. A request is authentic when
// X-Gitlab-Token equals the configured secret (compared in constant time).
package gitlab
