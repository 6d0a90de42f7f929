package pipeline

// The keys each level of a .pipeline.yml accepts. docs/pipeline.schema.json
// must list exactly these (schema_test.go checks), so a key is added here,
// in the parser, in the schema and in docs/pipeline.md together.
var (
	pipelineKeys  = []string{"version", "env", "when", "inputs", "stages"}
	whenKeys      = []string{"event", "branch", "branches", "tag", "tags", "paths", "paths_ignore"}
	stageWhenKeys = append(append([]string(nil), whenKeys...), "status")
	stageKeys     = []string{"image", "needs", "labels", "services", "matrix", "when", "concurrency", "approval", "environment", "timeout", "env", "steps", "artifacts", "artifacts_from", "fetch", "cache", "deploy", "container", "secrets"}
	stepKeys      = []string{"name", "run", "image", "env", "timeout", "retry", "allow_failure", "container"}
	serviceKeys   = []string{"name", "image", "command", "env", "ready", "container"}
	containerKeys = []string{"user", "privileged", "volumes", "network", "pid", "devices", "cap_add"}
	readyKeys     = []string{"port", "command", "timeout"}
	retryKeys     = []string{"limit", "exit_codes"}
	artifactsKeys = []string{"paths", "when", "expire_in"}
	fetchKeys     = []string{"url", "sha256", "dest"}
	cacheKeys     = []string{"key", "fallback", "paths"}
	cacheKeyKeys  = []string{"prefix", "files"}
	// matrixKeys are the matrix keys that are not axes.
	matrixKeys = []string{"exclude", "include"}

	// Keys reserved for features that are planned but not implemented:
	// they are rejected with CodeUnsupported rather than CodeUnknownKey so
	// that nobody believes a misspelling.
	pipelineReserved = []string{"secrets"}
	stageReserved    = []string(nil)
	stepReserved     = []string{"secrets", "artifacts", "cache"}
	serviceReserved  = []string{"secrets"}
)
