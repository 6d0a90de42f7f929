package wire

import "github.com/runnel-ci/runnel/pipeline"

// ClaimsWildcard matches the claim subjects of every agent.
const ClaimsWildcard = Prefix + "claims.*"

// ClaimSubject is where agent sends its claims (core NATS request/reply).
func ClaimSubject(agent string) string { return Prefix + "claims." + Token(agent) }

// Claim asks the server for a job's stage attempt before the agent
// touches anything for it (wire rule 3). Token is unique per delivery of
// the job to the agent and stays the same when the request is sent
// again, so a repeated claim gets the same answer.
type Claim struct {
	V       int    `json:"v"`
	RunID   string `json:"run_id"`
	StageID string `json:"stage_id"`
	Attempt int    `json:"attempt"` // the job's
	Agent   string `json:"agent"`   // the sender; must be the subject's
	Token   string `json:"token"`
}

// ClaimReply is the server's answer to a Claim.
type ClaimReply struct {
	V       int  `json:"v"`
	Granted bool `json:"granted"`
	// Attempt is the attempt to run as and report (granted only).
	Attempt int `json:"attempt,omitempty"`
	// Lease is how long the server waits for a report of the attempt
	// (heartbeats every few seconds) before it gives the stage to another
	// attempt; the agent stops the stage before that when it cannot
	// report (granted only).
	Lease pipeline.Duration `json:"lease,omitempty"`
	// Reason says why a claim was refused: the job is a copy, its
	// attempt is over, or the agent's credential does not allow it.
	Reason string `json:"reason,omitempty"`
	// Release (refused only) asks the agent to hand the job back to its
	// queue, delivered again after this long (to an agent that may claim
	// it), instead of dropping it: the job is still to run, not by this
	// agent. Zero: drop it.
	Release pipeline.Duration `json:"release,omitempty"`
}

func (m *Claim) version() *int      { return &m.V }
func (m *ClaimReply) version() *int { return &m.V }
