// Package deployer runs a stage's deploy block on an agent: it turns the
// compiled pipeline.Deploy into a deploy.Release, picks the provider, and
// reports the release's progress to the step's log and to the server.
package deployer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/docker/docker/client"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/deploy"
	"github.com/runnel-ci/runnel/deploy/docker"
	"github.com/runnel-ci/runnel/pipeline"
)

// Deployer holds what an agent deploys with. One Deployer serves every
// stage of the agent; releases of one app through it are serialised.
type Deployer struct {
	// Docker is the engine the docker provider runs apps on; nil: one
	// made from the environment (DOCKER_HOST) at the first docker deploy.
	Docker *client.Client
	// ProxyToken is the bearer token of the runnel proxy control APIs
	// ($RUNNEL_PROXY_TOKEN on the agent).
	ProxyToken string
	Logger     *slog.Logger

	mu        sync.Mutex
	providers map[string]deploy.Provider
}

// Job returns the stage.Deployer of one stage attempt; report, when not
// nil, receives every progress event (for the server).
func (d *Deployer) Job(report func(wire.DeployProgress)) stage.Deployer {
	return &job{d: d, report: report}
}

type job struct {
	d      *Deployer
	report func(wire.DeployProgress)
}

// Release returns the release a deploy block asks for.
func Release(pd *pipeline.Deploy) deploy.Release {
	return deploy.Release{
		App: pd.App, Version: pd.Version, Image: pd.Image, Command: pd.Command, Env: pd.Env, Port: pd.Port,
		Health: deploy.HealthCheck{
			Path: pd.Health.Path, Exec: pd.Health.Command, Interval: pd.Health.Interval.D(), Timeout: pd.Health.Timeout.D(),
			StartTimeout: pd.Health.StartTimeout.D(), Failures: pd.Health.Failures,
		},
		TrafficSteps:  pd.Strategy.Steps(),
		Interval:      pd.Strategy.Interval.D(),
		BakeTime:      pd.Bake.D(),
		StopOnFailure: pd.OnFailure == pipeline.OnFailureStop,
	}
}

// Deploy implements stage.Deploy: a release that failed or rolled back
// is a failure of the step (stage.ErrContent), a provider that cannot be
// made is an error.
func (j *job) Deploy(ctx context.Context, spec *engine.Spec, out io.Writer) error {
	pd := spec.Stage.Deploy
	var prov deploy.Provider
	var err error
	switch pd.Provider {
	case pipeline.ProviderECS:
		prov, err = j.d.ecsProvider(pd, spec)
	case pipeline.ProviderECSService:
		prov, err = j.d.ecsServiceProvider(pd, spec)
	case pipeline.ProviderCodeDeploy:
		prov, err = j.d.codeDeployProvider(pd, spec)
	default:
		prov, err = j.d.provider(pd)
	}
	if err != nil {
		fmt.Fprintf(out, "deploy: %v\n", err)
		return err
	}
	rel := Release(pd)
	rel.ID, rel.Attempt = releaseID(spec), spec.Attempt
	progress := wire.DeployProgress{Provider: pd.Provider, App: pd.App, Version: pd.Version}
	fmt.Fprintf(out, "deploy: %s %s with %s, strategy %s, steps %v\n", pd.App, pd.Version, pd.Provider, pd.Strategy.Type, rel.TrafficSteps)
	res, err := prov.Deploy(ctx, rel, func(e deploy.Event) {
		fmt.Fprintf(out, "deploy: %s [%s] %d%% on %s: %s\n", e.Time.UTC().Format("15:04:05.000"), e.Phase, e.Weight, pd.Version, e.Message)
		if j.report != nil && e.Phase != deploy.PhaseDone {
			progress.Phase, progress.Weight = string(e.Phase), e.Weight
			j.report(progress)
		}
	})
	progress.From, progress.Phase, progress.Outcome = res.From, string(deploy.PhaseDone), string(res.Outcome)
	if res.Outcome == deploy.Succeeded {
		progress.Weight = 100
	} else {
		progress.Weight = 0
		if res.Outcome == deploy.Failed && pd.OnFailure == pipeline.OnFailureStop && len(res.Steps) > 0 {
			progress.Weight = res.Steps[len(res.Steps)-1].Weight
		}
	}
	if j.report != nil {
		j.report(progress)
	}
	fmt.Fprintf(out, "deploy: %s\n", outcomeLine(res))
	if err == nil {
		return nil
	}
	if errors.Is(err, deploy.ErrRolledBack) || errors.Is(err, deploy.ErrFailed) {
		return fmt.Errorf("%w: %w", stage.ErrContent, err)
	}
	return err
}

func outcomeLine(res deploy.Result) string {
	s := fmt.Sprintf("%s (from %q to %q in %s)", res.Outcome, res.From, res.To, res.Finished.Sub(res.Started).Round(1e6))
	if res.Reason != "" {
		s += ": " + res.Reason
	}
	return s
}

// provider returns the provider of a deploy block, made once per target.
func (d *Deployer) provider(pd *pipeline.Deploy) (deploy.Provider, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var key string
	switch pd.Provider {
	case pipeline.ProviderDocker:
		key = fmt.Sprintf("docker\x00%s\x00%s\x00%s", pd.App, pd.Docker.Network, pd.Docker.Proxy)
	default:
		return nil, fmt.Errorf("provider %q is not available on this agent", pd.Provider)
	}
	if p, ok := d.providers[key]; ok {
		return p, nil
	}
	if d.Docker == nil {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("provider docker: %w", err)
		}
		d.Docker = cli
	}
	router, err := docker.NewClient(pd.Docker.Proxy, d.ProxyToken)
	if err != nil {
		return nil, err
	}
	p, err := docker.New(d.Docker, docker.Options{App: pd.App, Network: pd.Docker.Network, Proxy: router, Logger: d.Logger})
	if err != nil {
		return nil, err
	}
	if d.providers == nil {
		d.providers = map[string]deploy.Provider{}
	}
	d.providers[key] = p
	return p, nil
}
