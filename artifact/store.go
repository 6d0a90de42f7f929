package artifact

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Implementations wrap them with %w, so callers test with
// errors.Is.
var (
	// ErrNotFound: no object is stored under the key.
	ErrNotFound = errors.New("artifact not found")
	// ErrChecksum: the bytes do not match the SHA-256 recorded when they
	// were written (or expected by the caller), or no checksum is recorded.
	ErrChecksum = errors.New("artifact checksum mismatch")
	// ErrBadKey: the key or archive path breaks the rules of CleanKey.
	ErrBadKey = errors.New("bad artifact key")
)

// Info describes a stored object.
type Info struct {
	Key     string    // the object's key, as given to Put
	Size    int64     // length in bytes
	SHA256  string    // lowercase hex SHA-256 of the content, recorded by Put
	ModTime time.Time // when the object was written (store clock)
}

// Store keeps artifacts by key.
//
// Contract, for every implementation (artifact/storetest checks it):
//   - Keys must pass CleanKey; otherwise methods return an error wrapping
//     ErrBadKey and touch nothing.
//   - Put reads r to EOF, computes the SHA-256 of what it read and records it
//     with the object. size is the exact length when known, or -1. A size
//     that does not match the bytes read is an error. Put replaces an
//     existing object; a failed Put leaves the previous object (or none)
//     in place, never a partial one.
//   - Get returns a reader that verifies the recorded SHA-256 while it is
//     read: on a mismatch the read that reaches the end returns an error
//     wrapping ErrChecksum instead of io.EOF. Callers must read to io.EOF
//     before trusting the bytes, and must Close the reader.
//   - Stat, Get and Delete of a missing key return an error wrapping
//     ErrNotFound. Delete is otherwise idempotent in effect.
//   - List returns the objects whose key starts with prefix (a plain string
//     prefix, "" for all), sorted by key.
//   - Methods are safe for concurrent use. A Get concurrent with a Put of
//     the same key may fail with ErrChecksum; artifact keys are meant to be
//     written once.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error)
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	Stat(ctx context.Context, key string) (Info, error)
	List(ctx context.Context, prefix string) ([]Info, error)
	Delete(ctx context.Context, key string) error
}
