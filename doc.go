// Package runnel is the root of the Runnel module. It holds no code: the
// binary is cmd/runnel and the architecture is described in
// docs/architecture.md. Its test enforces the import layering that the
// architecture depends on.
package runnel
