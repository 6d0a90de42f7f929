package transfer

import (
	"context"
	"errors"
	"io"
	"os"
)

// Kind is the kind of a stored object.
type Kind string

// Kinds of stored objects.
const (
	KindArtifact Kind = "artifact" // a stage's artifacts, by stage ID
	KindCache    Kind = "cache"    // a cache entry, by key
	KindFetch    Kind = "fetch"    // a fetched file, by SHA-256
)

// Object is a stored archive or file that a stage may read.
type Object struct {
	Kind   Kind
	Name   string // stage ID, cache key or SHA-256
	Key    string // the store's key, for messages
	Size   int64
	SHA256 string
	URL    string // where an HTTP remote reads it
}

// ErrReadOnly is returned by Put of a cache entry when the run may not
// write caches (a pull request from a fork).
var ErrReadOnly = errors.New("this run may not write caches")

// Remote is where a stage's transfers are kept. Implementations are safe
// for concurrent use.
type Remote interface {
	// Artifact finds the artifacts that the stage stageID of this run
	// uploaded; found is false when it uploaded none.
	Artifact(ctx context.Context, stageID string) (o Object, found bool, err error)
	// Cache finds the entry of key or, failing that, the newest entry
	// whose key starts with the first fallback prefix that has one; exact
	// says whether it is key's own.
	Cache(ctx context.Context, key string, fallback []string) (o Object, found, exact bool, err error)
	// Fetched finds a fetched file by its SHA-256.
	Fetched(ctx context.Context, sum string) (o Object, found bool, err error)
	// Open returns o's content. Reading it to the end verifies its size
	// and SHA-256: a mismatch is an error wrapping artifact.ErrChecksum
	// that names the object's key.
	Open(ctx context.Context, o Object) (io.ReadCloser, error)
	// Put stores the file f, of size bytes with SHA-256 sum, as the
	// object kind/name: this run's artifacts of the stage name, the cache
	// entry name, or the fetched file whose SHA-256 is name.
	Put(ctx context.Context, kind Kind, name string, f *os.File, size int64, sum string) error
	// CacheWritable reports whether this run may write caches.
	CacheWritable() bool
}
