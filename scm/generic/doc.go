// Package generic implements Runnel's own JSON webhook, sent by the git
// post-receive hook (package githook) and usable by any script:
//
//	POST /hooks/generic
//	Authorization: Bearer <per-repository token>
//	X-Runnel-Delivery: <unique id>        (optional; or Idempotency-Key)
//	{"repo": "team/app", "ref": "refs/heads/main", "before": "…", "commit": "…",
//	 "message": "…", "timestamp": "2024-05-01T10:00:00Z", "author": "…",
//	 "inputs": {"env": "staging"}}
//
// The token is compared in constant time against the configured token or,
// when the configured secret has the form "sha256:<hex>", against its
// SHA-256 hash, so servers need not store tokens in clear.
package generic
