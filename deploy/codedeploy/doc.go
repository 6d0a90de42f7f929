// Package codedeploy is the deploy.Provider for Amazon ECS services whose
// deployment controller is CODE_DEPLOY: AWS CodeDeploy runs the
// blue/green release. A release registers a task definition with the
// new image (a copy of the service's), creates a CodeDeploy deployment
// with an inline AppSpec (revisionType AppSpecContent) and the deployment
// config its traffic steps map to (CodeDeployDefault.ECSAllAtOnce,
// ECSCanary…, ECSLinear…, or one it creates), and follows the deployment
// (GetDeployment, GetDeploymentTarget) to its end, reporting lifecycle
// events and traffic weights as progress. CodeDeploy shifts the traffic,
// runs the hooks and rolls back on failure by itself (automatic
// rollback); cancelling a release stops the deployment (StopDeployment
// with autoRollbackEnabled).
//
// The release's identity (deploy.Release.ID) and version are written in
// the deployment's description: a re-delivered stage finds the
// deployment it started and follows it instead of creating another, and
// the next release reads the version it replaces there.
package codedeploy
