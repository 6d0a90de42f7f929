package docker

import (
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/runnel-ci/runnel/pipeline"
)

// Limits are the resources every step and service container gets. Zero
// fields mean the engine's defaults (DefaultLimits), never "unlimited":
// an agent that wants more says how much.
type Limits struct {
	Memory int64   // bytes; swap is not added on top
	CPUs   float64 // CPUs' worth of time
	PIDs   int64   // processes and threads
}

// DefaultLimits are the limits of an Engine whose Options name none.
var DefaultLimits = Limits{Memory: 4 << 30, CPUs: 2, PIDs: 4096}

func (l Limits) orDefault() Limits {
	if l.Memory <= 0 {
		l.Memory = DefaultLimits.Memory
	}
	if l.CPUs <= 0 {
		l.CPUs = DefaultLimits.CPUs
	}
	if l.PIDs <= 0 {
		l.PIDs = DefaultLimits.PIDs
	}
	return l
}

// secure sets what every container of a stage gets, whatever it asked
// for: the limits and no-new-privileges (setuid binaries cannot raise a
// step's privileges).
func (e *Engine) secure(hc *container.HostConfig) {
	pids := e.limits.PIDs
	hc.Resources.Memory = e.limits.Memory
	hc.Resources.MemorySwap = e.limits.Memory // no swap beyond the limit
	hc.Resources.NanoCPUs = int64(e.limits.CPUs * 1e9)
	hc.Resources.PidsLimit = &pids
	hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges")
}

// apply puts a container's settings into its configs. Whether they are
// allowed was decided before Setup (stage.Executor with
// pipeline.CheckContainers); the engine does what the plan says.
func apply(cfg *container.Config, hc *container.HostConfig, c *pipeline.Container) error {
	if c == nil {
		return nil
	}
	// A job may not come from the parser: refuse what it would refuse.
	if c.Network != "" && c.Network != "host" && c.Network != "none" {
		return fmt.Errorf("container network %q is not one of host, none", c.Network)
	}
	if c.PID != "" && c.PID != "host" {
		return fmt.Errorf("container pid %q: the only value is host", c.PID)
	}
	cfg.User = c.User
	hc.Privileged = c.Privileged
	hc.Binds = append(hc.Binds, c.Volumes...)
	switch c.Network {
	case "host", "none":
		hc.NetworkMode = container.NetworkMode(c.Network)
	}
	if c.PID == "host" {
		hc.PidMode = "host"
	}
	for _, d := range c.Devices {
		parts := strings.Split(d, ":")
		m := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
		if len(parts) > 1 {
			m.PathInContainer = parts[1]
		}
		if len(parts) > 2 {
			m.CgroupPermissions = parts[2]
		}
		hc.Devices = append(hc.Devices, m)
	}
	hc.CapAdd = append(hc.CapAdd, c.CapAdd...)
	return nil
}
