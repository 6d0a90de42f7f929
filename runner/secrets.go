package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/runnel-ci/runnel/agents/logs"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/trust"
)

// SecretScope is what a secret's limits are checked against.
type SecretScope struct {
	Event       string // the run's event kind
	Branch      string // the run's branch (a pull request's target branch)
	Environment string // the stage's environment, "" for none
}

// SecretAllowed reports whether sec may be given out in scope, and if not,
// which of its limits refuses it.
func SecretAllowed(sec store.Secret, sc SecretScope) (bool, string) {
	if len(sec.Events) > 0 && !slices.Contains(sec.Events, sc.Event) {
		return false, fmt.Sprintf("only for events %v, not %s", sec.Events, sc.Event)
	}
	if len(sec.Branches) > 0 {
		ok := false
		for _, g := range sec.Branches {
			if sc.Branch != "" && pipeline.Match(g, sc.Branch) {
				ok = true
			}
		}
		if !ok {
			return false, fmt.Sprintf("only for branches %v, not %q", sec.Branches, sc.Branch)
		}
	}
	if len(sec.Environments) > 0 && !slices.Contains(sec.Environments, sc.Environment) {
		if sc.Environment == "" {
			return false, fmt.Sprintf("only for stages deploying to %v", sec.Environments)
		}
		return false, fmt.Sprintf("only for environments %v, not %s", sec.Environments, sc.Environment)
	}
	return true, ""
}

// ResolveSecrets returns what a job of a stage asking for refs gets from
// vals (the repository's secrets by name): the values allowed in sc, and
// one line per secret withheld, saying why. untrusted, when not "",
// withholds every secret for that reason.
func ResolveSecrets(refs []pipeline.SecretRef, vals map[string]*store.SecretValue, sc SecretScope, untrusted string) (out []wire.Secret, withheld []string) {
	for _, ref := range refs {
		v := vals[ref.Name]
		why := ""
		switch {
		case untrusted != "":
			why = untrusted
		case v == nil:
			why = "it was removed after the run was created"
		default:
			if ok, limit := SecretAllowed(v.Secret, sc); !ok {
				why = limit
			}
		}
		if why != "" {
			withheld = append(withheld, fmt.Sprintf("secret %s withheld: %s", ref.Name, why))
			continue
		}
		out = append(out, wire.Secret{Name: ref.Name, Env: ref.Env, File: ref.File, Value: v.Value})
	}
	return out, withheld
}

// jobSecrets resolves the secrets of stage ps of run for its job.
func (r *Runner) jobSecrets(ctx context.Context, run *store.Run, ps *pipeline.Stage) ([]wire.Secret, []string, error) {
	if len(ps.Secrets) == 0 {
		return nil, nil, nil
	}
	tr, err := trust.Load(ctx, r.cfg.Store, run)
	if err != nil {
		return nil, nil, err
	}
	_, untrusted := trust.Decide(tr)
	var vals map[string]*store.SecretValue
	if untrusted == "" {
		if vals, err = r.cfg.Store.SecretValues(ctx, run.RepoID); err != nil {
			return nil, nil, err
		}
	}
	out, withheld := ResolveSecrets(ps.Secrets, vals, SecretScope{Event: run.Event, Branch: run.Branch, Environment: ps.Environment}, untrusted)
	return out, withheld, nil
}

// checkSecrets reports the stages of p asking for a secret the
// repository does not have, as positioned diagnostics.
func (r *Runner) checkSecrets(ctx context.Context, repoID int64, p *pipeline.Pipeline) error {
	names, err := r.cfg.Store.SecretNames(ctx, repoID)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTransient, err)
	}
	return p.CheckSecrets(names)
}

// maskSecrets returns text (a reason an agent reported, on its way to the
// API, the UI and commit statuses) with the values of the run's
// repository's secrets and their variants masked. Agents mask their
// reasons already; this is the server's own line of defence, for agents
// of older versions and texts made on the way.
func (r *Runner) maskSecrets(ctx context.Context, run *store.Run, text string) string {
	if text == "" {
		return ""
	}
	vals, err := r.cfg.Store.SecretValues(ctx, run.RepoID)
	if err != nil {
		if !errors.Is(err, store.ErrNoSealer) {
			r.log.Warn("mask secrets: cannot read them; reason withheld", "run", run.ID, "err", err)
			return "(reason withheld: the server could not check it for secrets)"
		}
		return text
	}
	set := logs.NewSet()
	for _, v := range vals {
		set.Add(v.Value)
	}
	return set.Mask(text)
}
