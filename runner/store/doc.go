// Package store is the server's persistence: repositories, webhook
// deliveries, runs with their stages and steps, deployments, agents and API
// tokens, in SQLite (the default, via modernc.org/sqlite without cgo) or
// PostgreSQL (via pgx). One schema, embedded numbered migrations run at
// Open.
//
// Status changes go through the state machine in status.go: every write is
// conditional on the current status (and, for stages, on the attempt
// number, a fencing token), so a late or duplicated message can never move
// a finished run backwards. A refused change returns ErrConflict or
// ErrStale; the caller decides whether that is an error.
//
// Timestamps are stored as Unix microseconds in integer columns, the same in
// both dialects, so ordering and time arithmetic behave identically; the Go
// API uses time.Time (UTC) with the zero value meaning "not set".
//
// A *Store is safe for concurrent use. With SQLite all writes share one
// connection (SQLite allows one writer at a time anyway) and reads use a
// separate pool, so concurrent writers queue in Go instead of failing with
// SQLITE_BUSY.
package store
