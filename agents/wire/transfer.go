package wire

import "time"

// Transfer is a job's grant to the server's transfer API (see Transfers
// in the package doc).
type Transfer struct {
	// URL is the base of the job's transfer API: the server's URL with a
	// signed token that names the run, the stage, the attempt and whether
	// the run may write caches.
	URL string `json:"url"`
	// Expires is when the token stops working, even while the stage runs.
	Expires time.Time `json:"expires"`
	// CacheWrite says whether the run may write caches (the server
	// decides and enforces it; agents skip building caches they could not
	// save).
	CacheWrite bool `json:"cache_write,omitempty"`
}

// Object kinds of the transfer API.
const (
	ObjectArtifact = "artifact" // a stage's artifacts; name: its stage ID
	ObjectCache    = "cache"    // a cache entry; name: its key
	ObjectFetch    = "fetch"    // a fetched file; name: its SHA-256
)

// LookupRequest asks the transfer API (POST <url>/lookup) for an object.
type LookupRequest struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Fallback: for a cache, key prefixes tried in order when Name
	// misses; the newest entry under the first that has one is returned.
	Fallback []string `json:"fallback,omitempty"`
}

// Object is a stored object the job may read: an answer of lookup.
type Object struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"` // for a cache fallback, the entry's own key
	Key    string `json:"key"`  // the store key, for messages
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// URL GETs the content without further credentials for a while (a
	// presigned S3 URL or a signed URL of the server's blob API).
	URL string `json:"url"`
}

// UploadRequest asks the transfer API (POST <url>/upload) where to PUT an
// object, and, with the same body, tells it (POST <url>/commit) that the
// PUT is done.
type UploadRequest struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Upload is where to PUT an object: the body is exactly Size bytes, sent
// with these headers (among them Content-Length).
type Upload struct {
	URL     string              `json:"url"`
	Headers map[string][]string `json:"headers,omitempty"`
}
