// Package httpapi is the server's HTTP edge: the JSON API under /api/v1
// (bearer tokens checked against the store), forge and git-hook webhooks
// under /hooks (verified on the raw body before anything is stored,
// deduplicated by delivery ID, answered 202 at once and triggered by a
// bounded pool of workers the Server owns; deliveries that do not fit the
// queue, or that a previous process did not trigger, wait in the store
// for the sweeper, see triggers.go), badges, /healthz and /metrics.
// docs/api.md describes every endpoint. The recommended forge hook URL
// names the repository, e.g. /hooks/github/{owner}/{name}.
package httpapi
