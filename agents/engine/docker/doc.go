// Package docker implements engine.Engine on a Docker engine: per stage a
// bridge network and a workspace volume (filled with a copy of
// Spec.Source), the stage's services as containers on that network, and
// one container per step running `/bin/sh -e -c SCRIPT` in /workspace.
//
// Every container, network and volume carries the labels runnel.owner,
// runnel.run, runnel.stage and runnel.attempt, so Teardown finds what a
// Spec made and Prune / PruneDeadLocal find what a crashed process left.
// Nothing is ever privileged and no host path is ever mounted.
package docker
