// Package transfers is the server side of artifacts, fetched files and
// caches: one artifact.Store (a directory under the data directory, or an
// S3 bucket), an index of what it holds in the database
// (store.TransferObject), the grants jobs carry (Grant, the dispatch
// hook), the transfer API agents call with them, signed blob URLs when
// the store cannot presign (the filesystem), the API that lists and
// serves a run's artifacts, expiry with a sweeper, and metrics.
//
// Agents never hold store credentials. A grant is a signed token in a URL
// that reaches only its job's objects while the job's stage is unfinished
// (see Transfers in the agents/wire package doc); every object URL the API
// hands out is short-lived and names one object, one method and, for
// uploads, the exact size and SHA-256.
//
// Keys in the store: runs/<run>/<stage>/<attempt>.tar (artifacts),
// cache/<repo id>/<key>/<sha256 prefix>.tar (caches, per repository; runs
// that may not write caches, pull requests, only read them),
// fetch/sha256/<hex> (fetched files, shared by everyone: the content is
// checked against its name).
package transfers
