// Package awsfake is the plumbing of protocol-faithful fakes of AWS
// services that no emulator implements, for tests that drive the real
// aws-sdk-go-v2 clients.
//
// A Server is an httptest server that speaks the AWS JSON 1.1 protocol
// as the SDK does: POST / with Content-Type application/x-amz-json-1.1,
// the operation in X-Amz-Target ("CodeDeploy_20141006.CreateDeployment"),
// a SigV4 Authorization header whose access key id is recorded, JSON
// bodies with epoch-second timestamps (Epoch), and typed errors
// ({"__type": "DeploymentDoesNotExistException", "message": ...} with
// HTTP 400, see Error) that the SDK turns into its typed error values.
//
// Services (CodeDeploy in codedeploy.go; others beside it) register one
// Handler per operation. Handlers run one at a time under the Server's
// lock, so a service keeps its state in plain fields; tests read or
// change that state under the same lock with Do, and wait for a
// condition with Wait, which re-checks it after every call (no sleeps).
// The Server's clock is real time plus an offset the test may Advance.
package awsfake
