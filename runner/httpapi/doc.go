// Package httpapi is the server's HTTP edge: the JSON API under /api/v1
// (bearer tokens checked against the store), forge and git-hook webhooks
// under /hooks, badges, /healthz and /metrics. docs/api.md describes
// every endpoint.
//
// Webhooks (hooks.go) are unauthenticated input until verified: each
// request has a read deadline, its body is read only into bytes reserved
// from a budget shared by all webhook requests (hookbody.go), a forge
// hook body over 256 KiB is verified while it streams to an unlinked
// file and held in memory only once verified (hookspool.go), and its
// repository is known before the body is read in full (from the URL, the
// generic hook's token, or the start of the body). A rejected request is
// counted by reason and logged within bounds (internal/ratelog): a few lines
// per reason per interval, then one summary. A verified event is
// handed to the delivery queue (package deliveryq), which stores it bound
// to the verifying repository and triggers it after the 202. The
// recommended forge hook URL names the repository, e.g.
// /hooks/github/{owner}/{name}.
package httpapi
