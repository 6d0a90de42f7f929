// Package pipeline owns the .pipeline.yml model: parsing with a position on
// every node, validation into positioned diagnostics with stable codes, and
// compilation of a valid file plus an Event into a Plan, the JSON-serialisable
// stage DAG that agents execute.
//
// pipeline imports no other package of this project and nothing of Docker,
// NATS, AWS, net/http or database/sql: agents receive only the compiled Plan.
package pipeline
