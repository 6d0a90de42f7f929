package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/pipeline/rules"
	"github.com/runnel-ci/runnel/runner/store"
)

// Credentials are the agents' credentials as the server knows them (the
// server assembly gives them from DATA/nats-agents.json and the built-in
// agent's, current after each reload).
type Credentials interface {
	// AgentLabels returns the labels the credential of agent name allows
	// (`runnel agent token NAME --labels ...`); ok is false when the
	// server knows no credential of that name. Safe for concurrent use.
	AgentLabels(name string) (labels map[string]string, ok bool)
}

// releaseDelay is how long a job whose claim an agent's credential does
// not allow waits before JetStream delivers it again, so that the agents
// that may claim it pull it first.
const releaseDelay = 5 * time.Second

// labelRefusal is the rule that an agent claims only stages its
// credential allows (issue 10), checked by the server besides the NATS
// permissions (which an external NATS may lack): every label the stage
// needs must be one of the credential's, with the same value. An agent
// whose credential the server does not know (known false) is allowed no
// labels, like a credential made without --labels. It returns "" when the
// credential allows the stage, else why not.
func labelRefusal(agent string, need, allowed map[string]string, known bool) string {
	if !known {
		allowed = nil
	}
	if rules.HasLabels(allowed, need) {
		return ""
	}
	var missing []string
	for _, k := range slices.Sorted(maps.Keys(need)) {
		if v, ok := allowed[k]; !ok || v != need[k] {
			missing = append(missing, k+"="+need[k])
		}
	}
	if !known {
		return fmt.Sprintf("the server knows no credential of agent %s, so it may claim no stage that needs labels (%s)", agent, strings.Join(missing, ","))
	}
	return fmt.Sprintf("the credential of agent %s does not allow the labels %s the stage needs (remake it with runnel agent token %s --labels ...)", agent, strings.Join(missing, ","), agent)
}

// decideClaim is the rule for an agent's claim c of stage st (wire rule
// 3): one claim token per attempt, the first; a repeat of the granted
// token is granted again; anything for another attempt, a finished stage
// or a stage that is not queued is refused. write is true when a grant
// must still be stored.
func decideClaim(st *store.Stage, c *wire.Claim) (grant, write bool, reason string) {
	switch {
	case st.Status.Terminal():
		return false, false, "stage ended " + string(st.Status)
	case c.Attempt != st.Attempt:
		return false, false, fmt.Sprintf("attempt %d is not the stage's current attempt %d", c.Attempt, st.Attempt)
	case c.Token != "" && st.Claim == c.Token:
		return true, false, ""
	case st.Claim != "":
		return false, false, "attempt claimed by agent " + st.Agent
	case st.Status != store.StatusQueued:
		return false, false, "stage is " + string(st.Status)
	case c.Token == "":
		return false, false, "claim without token"
	}
	return true, true, ""
}

// HandleClaim answers an agent's claim of a job (wire rule 3). c.Agent
// must be the authenticated sender. It returns nil, no answer, when the
// store failed: the agent asks again. A granted claim starts the
// attempt's lease at once.
func (r *Runner) HandleClaim(ctx context.Context, c *wire.Claim) *wire.ClaimReply {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
	defer cancel()
	log := r.log.With("run", c.RunID, "stage", c.StageID, "attempt", c.Attempt, "agent", c.Agent)
	refuse := func(reason string) *wire.ClaimReply {
		log.Info("claim refused", "reason", reason)
		return &wire.ClaimReply{Reason: reason}
	}
	runID, err := strconv.ParseInt(c.RunID, 10, 64)
	if err != nil {
		return refuse("no such run")
	}
	run, err := r.cfg.Store.Run(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return refuse("no such run")
	}
	if err != nil {
		log.Error("claim: load run", "err", err)
		return nil
	}
	st := stageByKeyIn(run, c.StageID)
	if st == nil {
		return refuse("no such stage")
	}
	grant, write, reason := decideClaim(st, c)
	if !grant {
		return refuse(reason)
	}
	reason, ok := r.credentialAllows(ctx, run, st, c.Agent)
	if !ok {
		return nil
	}
	if reason != "" {
		log.Warn("claim refused: the agent's credential does not allow the stage", "reason", reason)
		return &wire.ClaimReply{Reason: reason, Release: pipeline.Duration(releaseDelay)}
	}
	if write {
		err := r.cfg.Store.ClaimStage(ctx, st.ID, c.Attempt, c.Token, c.Agent)
		if refused(err) {
			return refuse("claimed meanwhile: " + err.Error())
		}
		if err != nil {
			log.Error("claim: store", "err", err)
			return nil
		}
		log.Info("claim granted")
	}
	r.touch(run.ID, st.Key, c.Attempt, c.Agent, time.Now())
	return &wire.ClaimReply{Granted: true, Attempt: c.Attempt, Lease: pipeline.Duration(r.cfg.LeaseTimeout)}
}

// credentialAllows applies labelRefusal to agent's claim of st: reason
// is "" when its credential allows the stage (or the runner has no
// Credentials: NATS permissions only). ok is false when the stage's plan
// could not be read (the agent asks again).
func (r *Runner) credentialAllows(ctx context.Context, run *store.Run, st *store.Stage, agent string) (reason string, ok bool) {
	if r.cfg.Credentials == nil {
		return "", true
	}
	ps, err := r.planStage(ctx, run, st)
	if err != nil {
		r.log.Error("claim: stage plan", "run", run.ID, "stage", st.Key, "err", err)
		return "", false
	}
	allowed, known := r.cfg.Credentials.AgentLabels(agent)
	return labelRefusal(agent, ps.Labels, allowed, known), true
}

func stageByKeyIn(run *store.Run, key string) *store.Stage {
	for _, s := range run.Stages {
		if s.Key == key {
			return s
		}
	}
	return nil
}
