package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/runnel-ci/runnel/deploy"
)

// Labels put on every container and network the Provider creates.
const (
	LabelApp     = "runnel.deploy.app"
	LabelColor   = "runnel.deploy.color"
	LabelVersion = "runnel.deploy.version"
	// LabelNetwork marks a network created by the Provider.
	LabelNetwork = "runnel.deploy.network"
)

// Colors are the two container slots of an app; a release uses the slot
// the serving container does not use, so the colors alternate.
const (
	Blue  = "blue"
	Green = "green"
)

// Options configure a Provider.
type Options struct {
	// App is the one app this Provider releases; Deploy refuses others.
	App string
	// Network is the user-defined bridge network the containers join; it
	// is created (labelled) when missing. The host must be able to reach
	// the network's addresses (true for a local bridge network).
	Network string
	// Proxy is the app's traffic switch: a *Proxy in this process, or a
	// *Client of a `runnel proxy` that outlives this process. Required.
	Proxy Router
	// Drain is how long a replaced container keeps running after it
	// stopped receiving new requests, so requests in flight finish
	// (zero: 1 s; negative: none).
	Drain time.Duration
	// StopTimeout is the grace period of stopping a container (default 10 s).
	StopTimeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Provider is the deploy.Provider of one app on a Docker host.
//
// State lives in Docker (the labelled containers) and in the Proxy. On the
// first release after the process started, Provider adopts the oldest
// running container of the app as the serving version and removes the
// app's other containers (the leftovers of an interrupted release).
//
// Deploy is serialised per Provider.
type Provider struct {
	cli  *client.Client
	o    Options
	log  *slog.Logger
	lock chan struct{}
}

var _ deploy.Provider = (*Provider)(nil)

// New returns a Provider using cli (negotiate the API version:
// client.WithAPIVersionNegotiation).
func New(cli *client.Client, o Options) (*Provider, error) {
	switch {
	case cli == nil:
		return nil, errors.New("docker deploy provider: nil client")
	case o.App == "":
		return nil, errors.New("docker deploy provider: app is empty")
	case o.Network == "":
		return nil, errors.New("docker deploy provider: network is empty")
	case o.Proxy == nil:
		return nil, errors.New("docker deploy provider: proxy is nil")
	}
	switch {
	case o.Drain == 0:
		o.Drain = time.Second
	case o.Drain < 0:
		o.Drain = 0
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{cli: cli, o: o, log: log.With("app", o.App), lock: make(chan struct{}, 1)}, nil
}

// Deploy performs a blue/green release of rel (see deploy.Provider).
// rel.Port is the container port the proxy and the HTTP probe use;
// rel.Health.Exec, when set, is run in the container instead of the HTTP
// probe.
func (p *Provider) Deploy(ctx context.Context, rel deploy.Release, progress func(deploy.Event)) (deploy.Result, error) {
	if rel.App != p.o.App {
		now := time.Now()
		err := fmt.Errorf("deploy %s: provider serves app %q: %w", rel.App, p.o.App, deploy.ErrFailed)
		return deploy.Result{Outcome: deploy.Failed, To: rel.Version, Reason: err.Error(), Started: now, Finished: now}, err
	}
	select {
	case p.lock <- struct{}{}:
		defer func() { <-p.lock }()
	case <-ctx.Done():
		now := time.Now()
		err := fmt.Errorf("deploy %s %s: wait for the previous release: %w: %w", rel.App, rel.Version, deploy.ErrFailed, ctx.Err())
		return deploy.Result{Outcome: deploy.Failed, To: rel.Version, Reason: err.Error(), Started: now, Finished: now}, err
	}
	b := &backend{p: p}
	return deploy.BlueGreen(ctx, b, rel, func(e deploy.Event) {
		p.log.Info("deploy", "phase", e.Phase, "green_weight", e.Weight, "msg", e.Message)
		if progress != nil {
			progress(e)
		}
	})
}

// instance is one running container of the app.
type instance struct {
	id, color, version string
	url                *url.URL
}

// backend holds the state of one release.
type backend struct {
	p           *Provider
	blue, green *instance
}

var _ deploy.Backend = (*backend)(nil)

func (b *backend) Prepare(ctx context.Context, rel deploy.Release) (string, error) {
	if rel.Port <= 0 || rel.Port > 65535 {
		return "", fmt.Errorf("port %d: want 1..65535", rel.Port)
	}
	if err := b.p.ensureNetwork(ctx); err != nil {
		return "", err
	}
	cs, err := b.p.containers(ctx)
	if err != nil {
		return "", err
	}
	// The serving container is the one the proxy routes to as blue; with
	// an empty proxy, the oldest running one.
	routes, err := b.p.o.Proxy.GetRoutes(ctx)
	if err != nil {
		return "", err
	}
	pblue := routes.Blue
	sort.Slice(cs, func(i, j int) bool { return cs[i].Created < cs[j].Created })
	var serving *container.Summary
	if pblue != nil {
		for i := range cs {
			if cs[i].State != "running" {
				continue
			}
			if u, err := b.p.address(ctx, cs[i].ID, rel.Port); err == nil && u.String() == pblue.String() {
				serving = &cs[i]
				break
			}
		}
	}
	for i := range cs {
		if serving == nil && cs[i].State == "running" {
			serving = &cs[i]
		}
	}
	// Route everything to the serving container first, then remove the
	// leftovers (an interrupted release's green may still take traffic:
	// it is drained like any replaced container).
	var version string
	var blueURL *url.URL
	if serving != nil {
		u, err := b.p.address(ctx, serving.ID, rel.Port)
		if err != nil {
			return "", err
		}
		b.blue = &instance{id: serving.ID, color: serving.Labels[LabelColor], version: serving.Labels[LabelVersion], url: u}
		version, blueURL = b.blue.version, u
	}
	if err := b.p.o.Proxy.SetRoutes(ctx, Routes{Blue: blueURL, Release: rel.ID, Attempt: rel.Attempt}); err != nil {
		return "", err
	}
	for _, c := range cs {
		if serving != nil && c.ID == serving.ID {
			continue
		}
		b.p.log.Info("deploy: removing leftover container", "container", c.ID[:12], "version", c.Labels[LabelVersion])
		drain := time.Duration(0)
		if routes.Green != nil || routes.Blue != nil {
			drain = b.p.o.Drain
		}
		if err := b.p.remove(ctx, c.ID, drain); err != nil {
			return "", err
		}
	}
	return version, nil
}

func (b *backend) CreateGreen(ctx context.Context, rel deploy.Release) error {
	color := Blue
	if b.blue != nil && b.blue.color == Blue {
		color = Green
	}
	env := make([]string, 0, len(rel.Env))
	for k, v := range rel.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	cfg := &container.Config{
		Image:  rel.Image,
		Cmd:    rel.Command,
		Env:    env,
		Labels: map[string]string{LabelApp: rel.App, LabelColor: color, LabelVersion: rel.Version},
	}
	// Init: an app that is PID 1 without a SIGTERM handler (busybox httpd)
	// would otherwise ignore the stop signal and cost the full grace period.
	initProc := true
	hc := &container.HostConfig{Init: &initProc, RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{b.p.o.Network: {}}}
	name := "runnel-deploy-" + rel.App + "-" + color
	resp, err := b.p.cli.ContainerCreate(ctx, cfg, hc, nc, nil, name)
	if err != nil {
		return fmt.Errorf("create container %s from %s: %w", name, rel.Image, err)
	}
	b.green = &instance{id: resp.ID, color: color, version: rel.Version}
	if err := b.p.cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", name, err)
	}
	u, err := b.p.address(ctx, resp.ID, rel.Port)
	if err != nil {
		return err
	}
	b.green.url = u
	return nil
}

func (b *backend) Probe(ctx context.Context, rel deploy.Release, _ int) error {
	if b.green == nil || b.green.url == nil {
		return errors.New("no green container")
	}
	if len(rel.Health.Exec) > 0 {
		return b.p.execProbe(ctx, b.green.id, rel.Health.Exec)
	}
	u := *b.green.url
	u.Path = rel.Health.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("health check %s: %w", u.String(), err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("health check %s: status %d", u.String(), resp.StatusCode)
	}
	return nil
}

func (b *backend) Shift(ctx context.Context, rel deploy.Release, weight int) error {
	var blue *url.URL
	if b.blue != nil {
		blue = b.blue.url
	}
	return b.p.o.Proxy.SetRoutes(ctx, Routes{Blue: blue, Green: b.green.url, Weight: weight, Release: rel.ID, Attempt: rel.Attempt})
}

func (b *backend) Promote(ctx context.Context, rel deploy.Release) error {
	if err := b.p.o.Proxy.SetRoutes(ctx, Routes{Blue: b.green.url, Release: rel.ID, Attempt: rel.Attempt}); err != nil {
		return err
	}
	if b.blue == nil {
		return nil
	}
	if err := b.p.remove(ctx, b.blue.id, b.p.o.Drain); err != nil {
		return err
	}
	b.blue = nil
	return nil
}

func (b *backend) Rollback(ctx context.Context, rel deploy.Release) error {
	var blue *url.URL
	if b.blue != nil {
		blue = b.blue.url
	}
	// Fenced when a later attempt of the release has taken over: then
	// nothing of the app is removed.
	if err := b.p.o.Proxy.SetRoutes(ctx, Routes{Blue: blue, Release: rel.ID, Attempt: rel.Attempt}); err != nil {
		return err
	}
	// Remove every container of the app but blue: also a green whose
	// creation failed half way.
	cs, err := b.p.containers(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if b.blue != nil && c.ID == b.blue.id {
			continue
		}
		errs = append(errs, b.p.remove(ctx, c.ID, b.p.o.Drain))
	}
	return errors.Join(errs...)
}

func (p *Provider) ensureNetwork(ctx context.Context) error {
	if _, err := p.cli.NetworkInspect(ctx, p.o.Network, network.InspectOptions{}); err == nil {
		return nil
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", p.o.Network, err)
	}
	_, err := p.cli.NetworkCreate(ctx, p.o.Network, network.CreateOptions{Driver: "bridge", Labels: map[string]string{LabelNetwork: "true"}})
	if err != nil && !errdefs.IsConflict(err) {
		return fmt.Errorf("create network %s: %w", p.o.Network, err)
	}
	return nil
}

func (p *Provider) containers(ctx context.Context) ([]container.Summary, error) {
	cs, err := p.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelApp+"="+p.o.App))})
	if err != nil {
		return nil, fmt.Errorf("list containers of %s: %w", p.o.App, err)
	}
	return cs, nil
}

// address is the URL of the container's port on the network.
func (p *Provider) address(ctx context.Context, id string, port int) (*url.URL, error) {
	info, err := p.cli.ContainerInspect(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", id, err)
	}
	if info.NetworkSettings == nil || info.NetworkSettings.Networks[p.o.Network] == nil || info.NetworkSettings.Networks[p.o.Network].IPAddress == "" {
		return nil, fmt.Errorf("container %s has no address on network %s", id, p.o.Network)
	}
	ip := info.NetworkSettings.Networks[p.o.Network].IPAddress
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(ip, strconv.Itoa(port))}, nil
}

// remove stops (after drain) and removes a container; a missing one is
// not an error.
func (p *Provider) remove(ctx context.Context, id string, drain time.Duration) error {
	if drain > 0 {
		t := time.NewTimer(drain)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	grace := int(p.o.StopTimeout / time.Second)
	if err := p.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &grace}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	if err := p.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

func (p *Provider) execProbe(ctx context.Context, id string, cmd []string) error {
	ex, err := p.cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd})
	if err != nil {
		return fmt.Errorf("health exec %v: %w", cmd, err)
	}
	if err := p.cli.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
		return fmt.Errorf("health exec %v: %w", cmd, err)
	}
	for {
		st, err := p.cli.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return fmt.Errorf("health exec %v: %w", cmd, err)
		}
		if !st.Running {
			if st.ExitCode != 0 {
				return fmt.Errorf("health exec %v: exit status %d", cmd, st.ExitCode)
			}
			return nil
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("health exec %v: %w", cmd, ctx.Err())
		case <-t.C:
		}
	}
}
