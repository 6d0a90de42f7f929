// Package gitlab turns GitLab push and tag push webhooks into scm.Events.
// A request is authentic when X-Gitlab-Token equals the configured secret
// (compared in constant time).
package gitlab
