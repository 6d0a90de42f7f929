// Package s3 is the artifact.Store on an S3-compatible bucket (AWS S3,
// versitygw, MinIO, Ceph RGW, ...), built on aws-sdk-go-v2.
//
// Every object carries its SHA-256 twice: as S3's own checksum
// (ChecksumAlgorithm SHA256, with the precomputed x-amz-checksum-sha256 sent
// on upload so the server refuses bytes that changed in flight with
// BadDigest) and as the user metadata field "sha256" (x-amz-meta-sha256),
// which also covers multipart objects, whose S3 checksum is a
// checksum-of-part-checksums. Get asks for S3's checksum (ChecksumMode
// ENABLED) and verifies the content against the metadata while it is read.
package s3
