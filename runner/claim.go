package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
)

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

func stageByKeyIn(run *store.Run, key string) *store.Stage {
	for _, s := range run.Stages {
		if s.Key == key {
			return s
		}
	}
	return nil
}
