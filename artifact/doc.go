// Package artifact owns Runnel's artifact storage: the Store interface that
// keeps build outputs by key with a SHA-256 recorded on write and verified on
// every read, the rules for untrusted keys and archive paths (CleanKey,
// SafeJoin, ExtractTar), and the Fetcher, which downloads files by checksum
// into a local cache.
//
// Implementations live in subpackages: artifact/fs (a directory on local
// disk, the default) and artifact/s3 (any S3-compatible bucket). The
// conformance suite in artifact/storetest runs against both.
//
// This package imports only the standard library; artifact/s3 adds the AWS
// SDK. It never imports other Runnel packages.
package artifact
