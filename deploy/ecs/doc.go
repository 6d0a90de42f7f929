// Package ecs is the deploy.Provider for Amazon ECS services with an
// EXTERNAL deployment controller behind an Application Load Balancer: the
// ECS/CodeDeploy-style flow done with the plain APIs. Green is a new task
// set (CreateTaskSet) registered in the idle one of two target groups;
// traffic moves by rewriting the weights of the listener's (or a rule's)
// weighted forward action (ModifyListener / ModifyRule); finishing makes
// green the primary task set (UpdateServicePrimaryTaskSet) and deletes
// blue's (DeleteTaskSet); rolling back restores the weights and deletes
// green's.
//
// Health is pluggable (Config.Health); the default asks ELBv2 for the
// health of the green target group's targets (DescribeTargetHealth).
package ecs
