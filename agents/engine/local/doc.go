// Package local implements engine.Engine with sh on the host: each stage
// gets a fresh workspace directory (a copy of Spec.Source) and each step's
// script runs there with `sh -e -c` in its own process group. It serves
// machines without Docker and `runnel run --backend local`.
//
// There is no isolation beyond the workspace copy and a minimal
// environment: steps run as the agent's user. Step and stage images are
// ignored (the host's tools are used), and services are not supported:
// Setup fails for a stage that declares one.
package local
