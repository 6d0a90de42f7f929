package rules

// Reasons say why a run or stage ended as it did, or ended without
// running: stored as its reason (store.Run.Reason, store.Stage.Reason)
// and shown by the API, the UI, metrics and `runnel run`. They are
// stable strings, the one list of them; an agent's own reasons (a step's
// error) are free text.
const (
	// ReasonNeedsFailed: a need failed and the stage runs on success.
	ReasonNeedsFailed = "needs_failed"
	// ReasonNoNeedFailed: the stage runs on failure and no need failed.
	ReasonNoNeedFailed = "run_on_failure_not_met"
	// ReasonCanceledByUser: a person stopped the run (`runnel run`:
	// interrupted) before the stage started, or while it ran.
	ReasonCanceledByUser = "canceled_by_user"
	// ReasonCheckoutFailed: the agent could not check the commit out; the
	// agent adds ": " and the error.
	ReasonCheckoutFailed = "checkout_failed"
	// ReasonTimeout: the stage ran past its timeout (status failure).
	ReasonTimeout = "timeout"
	// ReasonAgentLost: the stage's agent went silent past the lease on
	// its last attempt.
	ReasonAgentLost = "agent_lost"
	// ReasonSuperseded: a newer run of the same concurrency group or
	// branch replaced the run.
	ReasonSuperseded = "superseded"
	// ReasonApprovalRejected: a person rejected the stage's approval.
	ReasonApprovalRejected = "approval_rejected"
	// ReasonDispatchFailed: the stage's job could not be handed to the
	// agents' queue.
	ReasonDispatchFailed = "dispatch_failed"
	// ReasonPipelineInvalid: the pipeline file did not compile.
	ReasonPipelineInvalid = "pipeline_invalid"
	// ReasonPipelineMissing: the commit has no pipeline file.
	ReasonPipelineMissing = "pipeline_missing"
	// ReasonSourceRefused: the run's source may not be fetched (no clone
	// URL and the event's is not on the repository's forge, or an unsafe
	// URL, commit or ref).
	ReasonSourceRefused = "source_refused"
	// ReasonFetchFailed: the pipeline file could not be fetched, and no
	// retry follows (runner.TriggerRequest.Final).
	ReasonFetchFailed = "fetch_failed"
)
