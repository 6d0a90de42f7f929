// Package artifacts benchmarks moving artifacts through Runnel: a 200 MiB
// upload and download by an agent through its job's grant (the server's
// transfer API and presigned versitygw URLs) next to the raw
// aws-sdk-go-v2 PutObject and GetObject of the same file on the same
// server, and a generated Go module's test stage run cold and with its
// caches. Results are in docs/benchmarks.md.
package artifacts
