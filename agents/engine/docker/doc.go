// Package docker implements engine.Engine on a Docker engine: per stage a
// bridge network and a workspace volume (filled with a copy of
// Spec.Source), the stage's services as containers on that network, and
// one container per step running `/bin/sh -e -c SCRIPT` in /workspace.
//
// Every container, network and volume carries the labels runnel.install,
// runnel.owner, runnel.host, runnel.pid, runnel.run, runnel.stage and
// runnel.attempt, and names carry the install id, so installs sharing an
// engine never collide: Teardown finds what a Spec made within its
// install, Prune and PruneDead find what this owner (and, for PruneDead, a
// dead process of it) left, and nothing ever matches another install's.
// Nothing is ever privileged and no host path is ever mounted.
package docker
