// Package httpapi is the server's HTTP edge: the JSON API under /api/v1
// (bearer tokens checked against the store), forge and git-hook webhooks
// under /hooks (verified on the raw body before anything is stored,
// deduplicated by delivery ID, answered 202 at once and triggered by a
// worker the Server owns), badges, /healthz and /metrics. docs/api.md
// describes every endpoint.
package httpapi
