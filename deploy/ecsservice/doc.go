// Package ecsservice is the deploy.Provider for Amazon ECS services that
// ECS itself releases: deploymentController ECS with the built-in
// BLUE_GREEN, CANARY or LINEAR deployment strategy behind a load
// balancer. A release registers a copy of the service's task definition
// with the new image (labelled with the version and the release's
// identity), updates the service to it with the strategy its traffic
// steps map to, and follows the service deployment ECS runs
// (DescribeServiceDeployments: status, lifecycle stage, production
// traffic) to its end. ECS shifts traffic, runs the service's lifecycle
// hooks and rolls back on its own; the provider asks for a rollback
// (StopServiceDeployment, stopType ROLLBACK) when the release is
// cancelled or takes too long. A re-delivered release finds the service
// deployment it started by its identity label and follows it.
package ecsservice
