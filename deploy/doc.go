// Package deploy owns blue/green releases: the Provider contract, the
// Release a deploy stage asks for, the Result it gets back, and BlueGreen,
// the one state machine (create green, wait for health, shift traffic step
// by step, finish or roll back) that every provider drives through its
// Backend primitives.
//
// Providers live in sub-packages: deploy/docker (two containers behind an
// in-process weighted reverse proxy) and deploy/ecs (ECS task sets behind
// ELBv2 weighted forwarding). See docs/deploy.md.
package deploy
