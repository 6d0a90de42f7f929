package pipeline

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Deploy is a stage's release of a new version of an app with a provider
// (see docs/deploy.md). It runs on the agent after the stage's steps, as
// a last step named DeployStep.
type Deploy struct {
	// Provider is one of DeployProviders.
	Provider string `json:"provider"`
	// App names the service; providers name and label resources by it.
	App string `json:"app"`
	// Version is recorded on the platform; default the commit SHA.
	Version string `json:"version"`
	// Image is the container image of the new version.
	Image   string            `json:"image"`
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// Port is the container port that serves traffic.
	Port      int           `json:"port"`
	Strategy  Strategy      `json:"strategy"`
	Health    DeployHealth  `json:"health,omitempty"`
	Bake      Duration      `json:"bake,omitempty"`
	OnFailure string        `json:"on_failure"`
	Docker    *DockerTarget `json:"docker,omitempty"`
	ECS       *ECSTarget    `json:"ecs,omitempty"`
	// ECSService is the service the ecs-service provider updates.
	ECSService *ECSServiceTarget `json:"ecs_service,omitempty"`
	// CodeDeploy is the deployment group the codedeploy provider uses.
	CodeDeploy *CodeDeployTarget `json:"codedeploy,omitempty"`
	Region     string            `json:"region,omitempty"`
	Endpoints  map[string]string `json:"endpoints,omitempty"`
}

// DeployStep is the name of the step a deploy runs as.
const DeployStep = "deploy"

// Providers, strategies and failure policies of a deploy.
const (
	ProviderDocker = "docker"
	ProviderECS    = "ecs"
	// ProviderECSService releases with ECS's own blue/green deployments
	// (deploymentController ECS).
	ProviderECSService = "ecs-service"
	// ProviderCodeDeploy releases with AWS CodeDeploy deployments of an
	// ECS service (deploymentController CODE_DEPLOY).
	ProviderCodeDeploy = "codedeploy"

	StrategyAllAtOnce = "all_at_once"
	StrategyCanary    = "canary"
	StrategyLinear    = "linear"

	OnFailureRollback = "rollback"
	OnFailureStop     = "stop"
)

// DeployProviders are the provider names a deploy block accepts.
var DeployProviders = []string{ProviderDocker, ProviderECS, ProviderECSService, ProviderCodeDeploy}

// Strategy says how traffic moves to the new version: all at once;
// canary: Percent % for Interval, then the rest; linear: Percent % more
// every Interval.
type Strategy struct {
	Type     string   `json:"type"`
	Percent  int      `json:"percent,omitempty"`
	Interval Duration `json:"interval,omitempty"`
}

// Steps returns the traffic percentages of the strategy, ending at 100.
func (s Strategy) Steps() []int {
	switch s.Type {
	case StrategyCanary:
		if s.Percent < 100 {
			return []int{s.Percent, 100}
		}
	case StrategyLinear:
		var out []int
		for w := s.Percent; w < 100 && s.Percent > 0; w += s.Percent {
			out = append(out, w)
		}
		return append(out, 100)
	}
	return []int{100}
}

// DeployHealth is how the new version is probed. Zero durations and
// counts mean the provider's defaults.
type DeployHealth struct {
	Path         string   `json:"path,omitempty"`
	Command      []string `json:"command,omitempty"`
	Interval     Duration `json:"interval,omitempty"`
	Timeout      Duration `json:"timeout,omitempty"`
	StartTimeout Duration `json:"start_timeout,omitempty"`
	Failures     int      `json:"failures,omitempty"`
}

// DockerTarget is where the docker provider runs the app: a network on
// the agent's Docker host and the control address of the app's
// `runnel proxy`.
type DockerTarget struct {
	Network string `json:"network"`
	Proxy   string `json:"proxy"`
}

// ECSTarget is the service the ecs provider releases with task sets
// (deploymentController EXTERNAL) behind an ELBv2 listener or rule.
type ECSTarget struct {
	Cluster        string    `json:"cluster"`
	Service        string    `json:"service"`
	Listener       string    `json:"listener,omitempty"`
	Rule           string    `json:"rule,omitempty"`
	TargetGroups   [2]string `json:"target_groups"`
	Subnets        []string  `json:"subnets,omitempty"`
	SecurityGroups []string  `json:"security_groups,omitempty"`
	AssignPublicIP bool      `json:"assign_public_ip,omitempty"`
	CPU            int       `json:"cpu,omitempty"`
	Memory         int       `json:"memory,omitempty"`
}

var (
	deployKeys   = []string{"provider", "app", "version", "image", "command", "env", "port", "strategy", "health", "bake", "on_failure", "region", "endpoints", "docker", "ecs", "ecs_service", "codedeploy"}
	strategyKeys = []string{"type", "percent", "interval"}
	healthKeys   = []string{"path", "command", "interval", "timeout", "start_timeout", "failures"}
	dockerKeys   = []string{"network", "proxy"}
	ecsKeys      = []string{"cluster", "service", "listener", "rule", "target_groups", "subnets", "security_groups", "assign_public_ip", "cpu", "memory"}
	// endpointKeys are the AWS services whose endpoint may be overridden.
	endpointKeys = []string{"ecs", "elbv2", "codedeploy"}

	appNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)
	varRefRE  = regexp.MustCompile(`\$\{([^}]*)\}`)
)

// deployRef is a ${NAME} reference in a deploy field, checked once the
// whole file is read.
type deployRef struct {
	name string
	node *yaml.Node
}

// deployDef is a parsed deploy block with what the checks after parsing
// need.
type deployDef struct {
	d    *Deploy
	refs []deployRef
	// vals are the block's values by key, for checks that point at them.
	vals map[string]*yaml.Node
}

func (ps *parser) deploy(key, n *yaml.Node) *deployDef {
	n = ps.mapping(n, "deploy")
	if n == nil {
		return nil
	}
	dd := &deployDef{d: &Deploy{Version: "${RUNNEL_COMMIT}", Strategy: Strategy{Type: StrategyAllAtOnce}, OnFailure: OnFailureRollback}}
	d := dd.d
	es := ps.entries(n, 0)
	ps.checkKeys(es, "deploy", deployKeys, nil)
	dd.vals = map[string]*yaml.Node{}
	var providerNode, portNode *yaml.Node
	expand := func(v *yaml.Node, what string) string {
		s, ok := ps.str(v, what)
		if ok {
			dd.refs = append(dd.refs, ps.refs(ps.resolve(v), s, what)...)
		}
		return s
	}
	for _, e := range es {
		dd.vals[e.key.Value] = ps.resolve(e.val)
		switch e.key.Value {
		case "provider":
			providerNode = ps.resolve(e.val)
			d.Provider, _ = ps.str(e.val, "deploy.provider")
		case "app":
			if s, ok := ps.str(e.val, "deploy.app"); ok {
				if !appNameRE.MatchString(s) {
					ps.errorf(ps.resolve(e.val), CodeBadName, "deploy.app %q must be 1-40 lowercase letters, digits and inner dashes", s)
				}
				d.App = s
			}
		case "version":
			d.Version = expand(e.val, "deploy.version")
		case "image":
			d.Image = expand(e.val, "deploy.image")
		case "command":
			d.Command = ps.command(e.val, "deploy.command")
		case "env":
			d.Env = ps.env(e.val, "deploy.env")
		case "port":
			if v := ps.resolve(e.val); v != nil {
				portNode = v
				d.Port, _ = ps.integer(v, "deploy.port", 1, 65535)
			}
		case "strategy":
			d.Strategy = ps.strategy(e.val)
		case "health":
			d.Health = ps.deployHealth(e.val)
		case "bake":
			d.Bake = ps.duration(e.val, "deploy.bake")
		case "on_failure":
			if s, ok := ps.str(e.val, "deploy.on_failure"); ok {
				if s != OnFailureRollback && s != OnFailureStop {
					ps.errorf(ps.resolve(e.val), CodeBadValue, "deploy.on_failure must be %s or %s, got %q", OnFailureRollback, OnFailureStop, s)
				}
				d.OnFailure = s
			}
		case "region":
			d.Region = expand(e.val, "deploy.region")
		case "endpoints":
			d.Endpoints = ps.endpoints(e.val)
		case "docker":
			d.Docker = ps.dockerTarget(e.val)
		case "ecs":
			d.ECS = ps.ecsTarget(e.val)
		case "ecs_service":
			d.ECSService = ps.ecsServiceTarget(e.val)
		case "codedeploy":
			d.CodeDeploy = ps.codeDeployTarget(e.val)
		}
	}
	switch {
	case providerNode == nil:
		ps.errorf(key, CodeMissingField, "deploy needs a provider (%s)", strings.Join(DeployProviders, ", "))
	case d.Provider != "" && !slices.Contains(DeployProviders, d.Provider):
		ps.errorf(providerNode, CodeBadValue, "deploy.provider must be one of %s, got %q", strings.Join(DeployProviders, ", "), d.Provider)
	}
	if d.App == "" {
		ps.errorf(key, CodeMissingField, "deploy needs an app")
	}
	if d.Image == "" {
		ps.errorf(key, CodeMissingField, "deploy needs an image")
	}
	if d.Port == 0 && portNode == nil {
		ps.errorf(key, CodeMissingField, "deploy needs the port the app serves on")
	}
	ps.checkProviderSettings(key, d)
	if d.Provider == ProviderECSService {
		ps.checkECSService(key, dd)
	}
	ps.checkCodeDeploy(key, dd)
	return dd
}

// checkProviderSettings reports settings missing for, or foreign to, the
// chosen provider.
func (ps *parser) checkProviderSettings(key *yaml.Node, d *Deploy) {
	switch d.Provider {
	case ProviderDocker:
		if d.Docker == nil {
			ps.errorf(key, CodeMissingField, "deploy with provider docker needs docker: {network, proxy}")
		}
		if d.ECS != nil || d.ECSService != nil || d.Region != "" || d.Endpoints != nil {
			ps.errorf(key, CodeBadValue, "deploy with provider docker takes no ecs, ecs_service, region or endpoints")
		}
	case ProviderECS:
		if d.ECS == nil {
			ps.errorf(key, CodeMissingField, "deploy with provider ecs needs ecs: {cluster, service, listener or rule, target_groups}")
		}
		if d.Docker != nil || d.ECSService != nil {
			ps.errorf(key, CodeBadValue, "deploy with provider ecs takes no docker or ecs_service settings")
		}
		if d.Health.Path != "" || d.Health.Command != nil {
			ps.errorf(key, CodeBadValue, "deploy with provider ecs probes the target group's health: health.path and health.command do not apply")
		}
	}
}

// refs returns the ${NAME} references of s, reporting malformed ones.
func (ps *parser) refs(n *yaml.Node, s, what string) []deployRef {
	var out []deployRef
	for _, m := range varRefRE.FindAllStringSubmatch(s, -1) {
		if !envNameRE.MatchString(m[1]) {
			ps.errorf(n, CodeBadValue, "%s: ${%s} is not a variable reference; use ${NAME}", what, m[1])
			continue
		}
		out = append(out, deployRef{name: m[1], node: n})
	}
	if rest := varRefRE.ReplaceAllString(s, ""); strings.Contains(rest, "${") {
		ps.errorf(n, CodeBadValue, "%s has an unterminated ${", what)
	}
	return out
}

// checkDeployRefs reports ${NAME} references in deploy blocks that name
// no variable of the stage: not a RUNNEL_* or CI variable, not in the
// pipeline's or the stage's env, not a matrix axis.
func (ps *parser) checkDeployRefs(p *Pipeline) {
	for _, sd := range p.stages {
		if sd.deploy == nil {
			continue
		}
		for _, r := range sd.deploy.refs {
			if r.name == "CI" || strings.HasPrefix(r.name, "RUNNEL_") {
				continue
			}
			if _, ok := sd.env[r.name]; ok {
				continue
			}
			if _, ok := p.env[r.name]; ok {
				continue
			}
			if slices.ContainsFunc(sd.axes, func(a string) bool {
				up := strings.ToUpper(a)
				return r.name == up || r.name == "MATRIX_"+up
			}) {
				continue
			}
			ps.errorf(r.node, CodeBadValue, "${%s} names no variable of stage %s (RUNNEL_*, env, or a matrix axis)", r.name, sd.name)
		}
	}
}

// awsCredentialVars are the variables the AWS providers read credentials
// from; only the stage's secrets set them (docs/deploy.md#credentials).
var awsCredentialVars = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}

// checkDeployCredentials refuses AWS credentials in the plain env (the
// pipeline's or the stage's) of a stage that deploys with an AWS
// provider: the file is in the repository, and the provider would not
// use them anyway.
func (ps *parser) checkDeployCredentials(p *Pipeline) {
	for _, sd := range p.stages {
		if sd.deploy == nil || sd.deploy.d.Provider == ProviderDocker || !slices.Contains(DeployProviders, sd.deploy.d.Provider) {
			continue
		}
		for _, v := range awsCredentialVars {
			_, inStage := sd.env[v]
			_, inPipeline := p.env[v]
			if inStage || inPipeline {
				ps.errorf(sd.deploy.vals["provider"], CodeBadValue,
					"stage %s deploys with %s and its env sets %s: AWS credentials come from the stage's secrets (secrets: [%s]), never from the file",
					sd.name, sd.deploy.d.Provider, v, v)
			}
		}
	}
}

func (ps *parser) strategy(n *yaml.Node) Strategy {
	s := Strategy{Type: StrategyAllAtOnce}
	n = ps.mapping(n, "deploy.strategy")
	if n == nil {
		return s
	}
	es := ps.entries(n, 0)
	ps.checkKeys(es, "deploy.strategy", strategyKeys, nil)
	var percentNode, intervalNode *yaml.Node
	for _, e := range es {
		switch e.key.Value {
		case "type":
			if t, ok := ps.str(e.val, "deploy.strategy.type"); ok {
				if t != StrategyAllAtOnce && t != StrategyCanary && t != StrategyLinear {
					ps.errorf(ps.resolve(e.val), CodeBadValue, "deploy.strategy.type must be %s, %s or %s, got %q", StrategyAllAtOnce, StrategyCanary, StrategyLinear, t)
				}
				s.Type = t
			}
		case "percent":
			if v := ps.resolve(e.val); v != nil {
				percentNode = v
				s.Percent, _ = ps.integer(v, "deploy.strategy.percent", 1, 99)
			}
		case "interval":
			intervalNode = ps.resolve(e.val)
			s.Interval = ps.duration(e.val, "deploy.strategy.interval")
		}
	}
	switch s.Type {
	case StrategyCanary, StrategyLinear:
		if percentNode == nil {
			ps.errorf(n, CodeMissingField, "deploy.strategy %s needs a percent", s.Type)
		}
		if intervalNode == nil {
			ps.errorf(n, CodeMissingField, "deploy.strategy %s needs an interval", s.Type)
		}
	case StrategyAllAtOnce:
		if percentNode != nil || intervalNode != nil {
			ps.errorf(n, CodeBadValue, "deploy.strategy %s takes no percent or interval", s.Type)
		}
	}
	return s
}

func (ps *parser) deployHealth(n *yaml.Node) DeployHealth {
	var h DeployHealth
	n = ps.mapping(n, "deploy.health")
	if n == nil {
		return h
	}
	es := ps.entries(n, 0)
	ps.checkKeys(es, "deploy.health", healthKeys, nil)
	for _, e := range es {
		switch e.key.Value {
		case "path":
			if s, ok := ps.str(e.val, "deploy.health.path"); ok {
				if !strings.HasPrefix(s, "/") {
					ps.errorf(ps.resolve(e.val), CodeBadValue, "deploy.health.path %q must start with /", s)
				}
				h.Path = s
			}
		case "command":
			h.Command = ps.command(e.val, "deploy.health.command")
		case "interval":
			h.Interval = ps.duration(e.val, "deploy.health.interval")
		case "timeout":
			h.Timeout = ps.duration(e.val, "deploy.health.timeout")
		case "start_timeout":
			h.StartTimeout = ps.duration(e.val, "deploy.health.start_timeout")
		case "failures":
			if v := ps.resolve(e.val); v != nil {
				h.Failures, _ = ps.integer(v, "deploy.health.failures", 1, 100)
			}
		}
	}
	if h.Path != "" && h.Command != nil {
		ps.errorf(n, CodeBadValue, "deploy.health takes path or command, not both")
	}
	return h
}

func (ps *parser) dockerTarget(n *yaml.Node) *DockerTarget {
	t := &DockerTarget{}
	if n = ps.stringMapping(n, "deploy.docker", dockerKeys, &t.Network, &t.Proxy); n == nil {
		return nil
	}
	if t.Network == "" {
		ps.errorf(n, CodeMissingField, "deploy.docker needs a network")
	}
	if t.Proxy == "" {
		ps.errorf(n, CodeMissingField, "deploy.docker needs proxy: the control address of the app's runnel proxy")
	}
	return t
}

// stringMapping reads the mapping n at what (e.g. "deploy.docker"), whose
// values are all strings: the value of keys[i] goes to *dst[i]. It
// reports keys not in keys and returns n, or nil when n is no mapping.
func (ps *parser) stringMapping(n *yaml.Node, what string, keys []string, dst ...*string) *yaml.Node {
	n = ps.mapping(n, what)
	if n == nil {
		return nil
	}
	es := ps.entries(n, 0)
	ps.checkKeys(es, what, keys, nil)
	for _, e := range es {
		if i := slices.Index(keys, e.key.Value); i >= 0 {
			*dst[i], _ = ps.str(e.val, what+"."+e.key.Value)
		}
	}
	return n
}

// refuseHealthKeys reports each of keys set in deploy.health, which
// provider does not take: why says what checks health instead.
func (ps *parser) refuseHealthKeys(dd *deployDef, keys []string, provider, why string) {
	for _, k := range keys {
		if v := mapValue(dd.vals["health"], k); v != nil {
			ps.errorf(v, CodeBadValue, "deploy.health.%s does not apply to provider %s: %s", k, provider, why)
		}
	}
}

// intervalNode is where a diagnostic about strategy.interval points: the
// interval's value, else the strategy.
func intervalNode(dd *deployDef) *yaml.Node {
	n := dd.vals["strategy"]
	if v := mapValue(n, "interval"); v != nil {
		return v
	}
	return n
}

func (ps *parser) ecsTarget(n *yaml.Node) *ECSTarget {
	n = ps.mapping(n, "deploy.ecs")
	if n == nil {
		return nil
	}
	t := &ECSTarget{}
	es := ps.entries(n, 0)
	ps.checkKeys(es, "deploy.ecs", ecsKeys, nil)
	for _, e := range es {
		switch e.key.Value {
		case "cluster":
			t.Cluster, _ = ps.str(e.val, "deploy.ecs.cluster")
		case "service":
			t.Service, _ = ps.str(e.val, "deploy.ecs.service")
		case "listener":
			t.Listener, _ = ps.str(e.val, "deploy.ecs.listener")
		case "rule":
			t.Rule, _ = ps.str(e.val, "deploy.ecs.rule")
		case "target_groups":
			tgs, _ := ps.strList(e.val, "deploy.ecs.target_groups")
			if len(tgs) != 2 {
				ps.errorf(ps.resolve(e.val), CodeBadValue, "deploy.ecs.target_groups must list exactly two target groups, got %d", len(tgs))
			} else {
				t.TargetGroups = [2]string{tgs[0], tgs[1]}
			}
		case "subnets":
			t.Subnets, _ = ps.strList(e.val, "deploy.ecs.subnets")
		case "security_groups":
			t.SecurityGroups, _ = ps.strList(e.val, "deploy.ecs.security_groups")
		case "assign_public_ip":
			t.AssignPublicIP = ps.boolean(e.val, "deploy.ecs.assign_public_ip")
		case "cpu":
			if v := ps.resolve(e.val); v != nil {
				t.CPU, _ = ps.integer(v, "deploy.ecs.cpu", 128, 16384)
			}
		case "memory":
			if v := ps.resolve(e.val); v != nil {
				t.Memory, _ = ps.integer(v, "deploy.ecs.memory", 128, 122880)
			}
		}
	}
	for _, f := range []struct{ v, name string }{{t.Cluster, "cluster"}, {t.Service, "service"}} {
		if f.v == "" {
			ps.errorf(n, CodeMissingField, "deploy.ecs needs a %s", f.name)
		}
	}
	if (t.Listener == "") == (t.Rule == "") {
		ps.errorf(n, CodeMissingField, "deploy.ecs needs a listener or a rule (one of them)")
	}
	if t.TargetGroups[0] == "" {
		ps.errorf(n, CodeMissingField, "deploy.ecs needs target_groups: the two target groups blue and green alternate on")
	}
	return t
}

func (ps *parser) endpoints(n *yaml.Node) map[string]string {
	n = ps.mapping(n, "deploy.endpoints")
	if n == nil {
		return nil
	}
	out := map[string]string{}
	es := ps.entries(n, 0)
	ps.checkKeys(es, "deploy.endpoints", endpointKeys, nil)
	for _, e := range es {
		if s, ok := ps.str(e.val, "deploy.endpoints."+e.key.Value); ok {
			if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
				ps.errorf(ps.resolve(e.val), CodeBadValue, "deploy.endpoints.%s %q must be an http or https URL", e.key.Value, s)
			}
			out[e.key.Value] = s
		}
	}
	return out
}

// compile returns the stage's copy of the deploy with its references
// expanded against the stage's environment, and its env values as every
// env value is (expandEnv, against vars).
func (dd *deployDef) compile(env, vars map[string]string) *Deploy {
	d := *dd.d
	d.Version = expandEnv(d.Version, env)
	d.Image = expandEnv(d.Image, env)
	d.Region = expandEnv(d.Region, env)
	d.Command = slices.Clone(d.Command)
	d.Health.Command = slices.Clone(d.Health.Command)
	d.Env = expandAll(d.Env, vars)
	d.Endpoints = maps.Clone(d.Endpoints)
	if d.Docker != nil {
		t := *d.Docker
		d.Docker = &t
	}
	if d.ECS != nil {
		t := *d.ECS
		t.Subnets = slices.Clone(t.Subnets)
		t.SecurityGroups = slices.Clone(t.SecurityGroups)
		d.ECS = &t
	}
	if d.ECSService != nil {
		t := *d.ECSService
		d.ECSService = &t
	}
	if d.CodeDeploy != nil {
		t := *d.CodeDeploy
		d.CodeDeploy = &t
	}
	return &d
}

// deployGroup is the concurrency group of a deploy stage that names none:
// its environment, or without one its release target (provider and app),
// so that two runs never release the same thing at once, in run order,
// also when the file does not ask for it (docs/deploy.md).
func deployGroup(env string, d *Deploy) string {
	if env != "" {
		return env
	}
	return "deploy:" + d.Provider + ":" + d.App
}
