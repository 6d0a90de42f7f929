// Package deploy owns blue/green releases: the Provider contract, the
// Release a deploy stage asks for, the Result it gets back, and BlueGreen,
// the one state machine (create green, wait for health, shift traffic step
// by step, finish or roll back) that every provider drives through its
// Backend primitives.
//
// Providers live in sub-packages: deploy/docker (two containers behind an
// in-process weighted reverse proxy), deploy/ecs (ECS task sets behind
// ELBv2 weighted forwarding), deploy/ecsservice (ECS's own blue/green
// deployments, which it drives and Runnel follows) and deploy/codedeploy
// (AWS CodeDeploy deployments of an ECS service, likewise). The platform
// providers (ecsservice, codedeploy) run their own state machine and do
// not use BlueGreen. See docs/deploy.md.
package deploy
