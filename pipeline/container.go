package pipeline

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Container holds what a stage, a step or a service asks of its
// container beyond the defaults: a user to run as, and the requests that
// weaken isolation from the host. Each of those needs a Permission that
// the server's admin grants per repository (checked by CheckPolicy when a
// run is created) and that the agent allows (checked again by
// Container.Needs on the agent, so a job that skipped the server is
// refused too).
type Container struct {
	// User is the user (name or uid, optionally :group or :gid) the
	// container runs as; "" keeps the image's user.
	User       string `json:"user,omitempty"`
	Privileged bool   `json:"privileged,omitempty"`
	// Volumes are host bind mounts, "HOST:CONTAINER" or
	// "HOST:CONTAINER:ro", both absolute paths.
	Volumes []string `json:"volumes,omitempty"`
	// Network is "host" (the host's network stack) or "none"; "" is the
	// stage's own network.
	Network string `json:"network,omitempty"`
	// PID is "host" (the host's process namespace) or "".
	PID string `json:"pid,omitempty"`
	// Devices are host devices, "/dev/x" or "/dev/x:/dev/y[:rwm]".
	Devices []string `json:"devices,omitempty"`
	// CapAdd are Linux capabilities added to Docker's default set, without
	// the CAP_ prefix ("SYS_ADMIN", or "ALL").
	CapAdd []string `json:"cap_add,omitempty"`
}

// Permission is one kind of container request that weakens isolation.
type Permission string

// Permissions, in the order they are reported.
const (
	PermPrivileged   Permission = "privileged"
	PermDockerSocket Permission = "docker-socket" // a bind mount of the Docker socket
	PermHostMounts   Permission = "host-mounts"   // any other bind mount of a host path
	PermHostNetwork  Permission = "host-network"
	PermHostPID      Permission = "host-pid"
	PermDevices      Permission = "devices"
	PermCapAdd       Permission = "cap-add"
)

// Permissions lists every Permission.
var Permissions = []Permission{PermPrivileged, PermDockerSocket, PermHostMounts, PermHostNetwork, PermHostPID, PermDevices, PermCapAdd}

// ParsePermissions checks a list of permission names (as an admin or a
// flag gives them). "none" alone means the empty list.
func ParsePermissions(names []string) ([]Permission, error) {
	var out []Permission
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || n == "none" && len(names) == 1 {
			continue
		}
		p := Permission(n)
		if !slices.Contains(Permissions, p) {
			return nil, fmt.Errorf("unknown container permission %q (known: %s)", n, joinPerms(Permissions))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func joinPerms(ps []Permission) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// dockerSockets are the usual paths of the Docker engine's socket. A
// bind mount of one of them hands the container the host.
var dockerSockets = []string{"/var/run/docker.sock", "/run/docker.sock"}

// mountNeeds is the permission a bind mount of host path src needs.
func mountNeeds(src string) Permission {
	if slices.Contains(dockerSockets, path.Clean(src)) || path.Base(src) == "docker.sock" {
		return PermDockerSocket
	}
	return PermHostMounts
}

// Need is one permission a container request needs, with what asked.
type Need struct {
	Permission Permission
	What       string // e.g. `volume "/var/run/docker.sock:/var/run/docker.sock"`
}

// Needs returns the permissions c needs, one per request, in field order.
// A nil Container needs none.
func (c *Container) Needs() []Need {
	if c == nil {
		return nil
	}
	var out []Need
	if c.Privileged {
		out = append(out, Need{PermPrivileged, "privileged: true"})
	}
	for _, v := range c.Volumes {
		src, _, _ := strings.Cut(v, ":")
		out = append(out, Need{mountNeeds(src), fmt.Sprintf("volume %q", v)})
	}
	if c.Network == "host" {
		out = append(out, Need{PermHostNetwork, "network: host"})
	}
	if c.PID == "host" {
		out = append(out, Need{PermHostPID, "pid: host"})
	}
	for _, d := range c.Devices {
		out = append(out, Need{PermDevices, fmt.Sprintf("device %q", d)})
	}
	for _, cp := range c.CapAdd {
		out = append(out, Need{PermCapAdd, fmt.Sprintf("cap_add %q", cp)})
	}
	return out
}

// StepContainer is the container settings of step in st: the stage's,
// with each field the step sets replacing the stage's. nil when neither
// sets anything.
func (st *Stage) StepContainer(step *Step) *Container {
	if step.Container == nil {
		return st.Container
	}
	if st.Container == nil {
		return step.Container
	}
	c := *st.Container
	s := step.Container
	if s.User != "" {
		c.User = s.User
	}
	c.Privileged = c.Privileged || s.Privileged
	if s.Volumes != nil {
		c.Volumes = s.Volumes
	}
	if s.Network != "" {
		c.Network = s.Network
	}
	if s.PID != "" {
		c.PID = s.PID
	}
	if s.Devices != nil {
		c.Devices = s.Devices
	}
	if s.CapAdd != nil {
		c.CapAdd = s.CapAdd
	}
	return &c
}

// Refusal is a container request of a compiled stage that the allowed
// permissions do not cover.
type Refusal struct {
	Where string // "step build", "service db" or "stage"
	Need
}

func (r Refusal) String() string {
	return fmt.Sprintf("%s: %s needs the container permission %s", r.Where, r.What, r.Permission)
}

// CheckContainers returns every container request of a compiled stage
// that allowed does not cover: the stage's and each step's (as
// StepContainer merges them) and each service's. It is what an agent
// checks before it runs a job, whatever the server said.
func CheckContainers(st *Stage, allowed []Permission) []Refusal {
	var out []Refusal
	check := func(where string, c *Container) {
		for _, n := range c.Needs() {
			if !slices.Contains(allowed, n.Permission) {
				out = append(out, Refusal{Where: where, Need: n})
			}
		}
	}
	for _, step := range st.Steps {
		check("step "+step.Name, st.StepContainer(step))
	}
	if len(st.Steps) == 0 {
		check("stage", st.Container)
	}
	for i := range st.Services {
		check("service "+st.Services[i].Name, st.Services[i].Container)
	}
	return out
}

// request is one container request of the file and where it is written.
type request struct {
	perm  Permission
	what  string
	where string // "stage build", "step test", "service db"
	node  *yaml.Node
}

// CheckPolicy reports, as positioned errors with CodeNotAllowed, every
// container request of the file that allowed does not cover (nil when
// there is none). `runnel lint` calls it with the permissions given on
// its command line (none by default); the server with the repository's.
func (p *Pipeline) CheckPolicy(allowed []Permission) error {
	var ds Diagnostics
	for _, sd := range p.stages {
		for _, r := range sd.requests {
			if slices.Contains(allowed, r.perm) {
				continue
			}
			ds = append(ds, Diagnostic{File: p.Name, Line: r.node.Line, Col: r.node.Column, Code: CodeNotAllowed, Severity: SeverityError,
				Message: fmt.Sprintf("%s: %s needs the container permission %s, which this repository does not have (an admin grants it with runnel repo update REPO --allow-container %s)",
					r.where, r.what, r.perm, r.perm)})
		}
	}
	if len(ds) == 0 {
		return nil
	}
	sortDiagnostics(ds)
	return ds
}

// Lint returns the file's warnings and the errors of CheckPolicy(allowed),
// ordered by position: everything `runnel lint` reports for a file that
// parses.
func (p *Pipeline) Lint(allowed []Permission) Diagnostics {
	ds := slices.Clone(p.Warnings)
	var pds Diagnostics
	if errors.As(p.CheckPolicy(allowed), &pds) {
		ds = append(ds, pds...)
	}
	sortDiagnostics(ds)
	return ds
}

var (
	userRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$`)
	capRE  = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,31}$`)
)

// container reads a container mapping of a stage, step or service; where
// names it in messages. Requests are added to reqs with their nodes.
func (ps *parser) container(n *yaml.Node, where string, reqs *[]request) *Container {
	n = ps.mapping(n, "container")
	if n == nil {
		return nil
	}
	c := &Container{}
	es := ps.entries(n, 0)
	ps.checkKeys(es, "container", containerKeys, nil)
	add := func(p Permission, what string, at *yaml.Node) {
		*reqs = append(*reqs, request{perm: p, what: what, where: where, node: at})
	}
	for _, e := range es {
		switch e.key.Value {
		case "user":
			if u, ok := ps.scalarText(e.val, "container.user"); ok {
				if !userRE.MatchString(u) {
					ps.errorf(ps.resolve(e.val), CodeBadValue, "container.user %q must be a user name or uid, optionally with :group or :gid", u)
				} else {
					c.User = u
				}
			}
		case "privileged":
			if c.Privileged = ps.boolean(e.val, "container.privileged"); c.Privileged {
				add(PermPrivileged, "privileged: true", e.key)
			}
		case "volumes":
			vals, nodes := ps.strList(e.val, "container.volumes")
			for i, v := range vals {
				if msg := checkVolume(v); msg != "" {
					ps.errorf(nodes[i], CodeBadValue, "container.volumes entry %q: %s", v, msg)
					continue
				}
				c.Volumes = append(c.Volumes, v)
				src, _, _ := strings.Cut(v, ":")
				add(mountNeeds(src), fmt.Sprintf("volume %q", v), nodes[i])
			}
		case "network":
			if s, ok := ps.str(e.val, "container.network"); ok {
				switch s {
				case "host":
					c.Network = s
					add(PermHostNetwork, "network: host", ps.resolve(e.val))
				case "none":
					c.Network = s
				default:
					ps.errorf(ps.resolve(e.val), CodeBadValue, "container.network %q is not one of host, none", s)
				}
			}
		case "pid":
			if s, ok := ps.str(e.val, "container.pid"); ok {
				if s != "host" {
					ps.errorf(ps.resolve(e.val), CodeBadValue, "container.pid %q: the only value is host", s)
				} else {
					c.PID = s
					add(PermHostPID, "pid: host", ps.resolve(e.val))
				}
			}
		case "devices":
			vals, nodes := ps.strList(e.val, "container.devices")
			for i, d := range vals {
				if msg := checkDevice(d); msg != "" {
					ps.errorf(nodes[i], CodeBadValue, "container.devices entry %q: %s", d, msg)
					continue
				}
				c.Devices = append(c.Devices, d)
				add(PermDevices, fmt.Sprintf("device %q", d), nodes[i])
			}
		case "cap_add":
			vals, nodes := ps.strList(e.val, "container.cap_add")
			for i, cp := range vals {
				cp = strings.TrimPrefix(strings.ToUpper(cp), "CAP_")
				if !capRE.MatchString(cp) {
					ps.errorf(nodes[i], CodeBadValue, "container.cap_add entry %q is not a capability name like NET_ADMIN", vals[i])
					continue
				}
				c.CapAdd = append(c.CapAdd, cp)
				add(PermCapAdd, fmt.Sprintf("cap_add %q", cp), nodes[i])
			}
		}
	}
	return c
}

// checkVolume returns what is wrong with a volume entry, or "".
func checkVolume(v string) string {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "want HOST:CONTAINER or HOST:CONTAINER:ro"
	}
	if !path.IsAbs(parts[0]) {
		return "the host path must be absolute (named volumes are not supported)"
	}
	if !path.IsAbs(parts[1]) || path.Clean(parts[1]) == "/" {
		return "the container path must be absolute and not /"
	}
	if len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw" {
		return "the mode must be ro or rw"
	}
	return ""
}

// checkDevice returns what is wrong with a device entry, or "".
func checkDevice(d string) string {
	parts := strings.Split(d, ":")
	if len(parts) > 3 || !strings.HasPrefix(parts[0], "/dev/") {
		return "want /dev/HOST[:/dev/CONTAINER[:rwm]]"
	}
	if len(parts) >= 2 && !path.IsAbs(parts[1]) {
		return "the container path must be absolute"
	}
	if len(parts) == 3 && (parts[2] == "" || strings.Trim(parts[2], "rwm") != "") {
		return "permissions are a combination of r, w and m"
	}
	return ""
}
