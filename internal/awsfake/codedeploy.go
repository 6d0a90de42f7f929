package awsfake

import (
	"fmt"
	"slices"
	"time"
)

// CodeDeploy is a stateful fake of AWS CodeDeploy's ECS blue/green
// deployments (computePlatform ECS), served by a Server under the target
// prefix CodeDeploy_20141006.
//
// A deployment moves through the lifecycle the service documents:
// Created, then InProgress through the ECS lifecycle events (BeforeInstall,
// Install, AfterInstall, AllowTestTraffic, AfterAllowTestTraffic,
// BeforeAllowTraffic, AllowTraffic, AfterAllowTraffic), then Succeeded.
// Every event takes Step; AllowTraffic shifts the green task set's traffic
// weight as the deployment config's traffic routing says (canary, linear,
// all at once), one configured minute lasting Minute. A deployment that
// fails (FailNext) or is stopped (StopDeployment) with automatic rollback
// gets a rollback deployment (creator codeDeployRollback) that sends the
// traffic back to blue, and both carry rollbackInfo.
//
// The state advances lazily, to the Server's clock, whenever a request
// arrives: tests that wait use Server.Wait, and may Server.Advance.
// Only inline AppSpecs in JSON (revisionType AppSpecContent) are read.
type CodeDeploy struct {
	s *Server
	// Step is how long one lifecycle event takes (default 10 ms).
	Step time.Duration
	// Minute is how long one minute of a deployment config's traffic
	// routing lasts (default 50 ms).
	Minute time.Duration

	groups      map[string]*DeploymentGroup
	configs     map[string]TrafficRouting
	deployments map[string]*Deployment
	order       []string // deployment ids, oldest first
	fail        *failure
	seq         int
}

// DeploymentGroup is an ECS blue/green deployment group.
type DeploymentGroup struct {
	App, Name string
	// Config is the group's deployment config (default
	// CodeDeployDefault.ECSAllAtOnce).
	Config           string
	Cluster, Service string
	// AutoRollback lists the events that roll back automatically
	// (DEPLOYMENT_FAILURE, DEPLOYMENT_STOP_ON_REQUEST); none when empty.
	AutoRollback []string
}

// TrafficRouting is a deployment config's traffic routing: Type is
// AllAtOnce, TimeBasedCanary or TimeBasedLinear; Percent and Minutes are
// the canary's (or each linear step's) percentage and interval.
type TrafficRouting struct {
	Type    string
	Percent int
	Minutes int
}

// LifecycleEvent is one lifecycle event of a deployment's ECS target.
type LifecycleEvent struct {
	Name       string
	Status     string // Pending, InProgress, Succeeded, Failed, Skipped
	Start, End time.Time
	Diagnostic string
}

// Deployment is one deployment as the fake holds it.
type Deployment struct {
	ID, App, Group, Config  string
	Description, Creator    string
	AppSpec                 string
	TaskDefinition          string
	Status                  string
	ErrorCode, ErrorMessage string
	// AutoRollback lists the events that roll this deployment back.
	AutoRollback []string
	// RollbackID is the deployment that rolled this one back;
	// RollbackOf the one this deployment rolls back.
	RollbackID, RollbackOf, RollbackMessage string
	Events                                  []LifecycleEvent
	// Weight is the percentage of production traffic on green.
	Weight                      int
	Created, Started, Completed time.Time

	cur   int       // index of the running event
	next  time.Time // when the running event (or step of AllowTraffic) ends
	shift []int     // AllowTraffic's weights still to come
	hold  time.Duration
	fail  *failure
}

type failure struct{ event, message string }

// ECS lifecycle events of a blue/green deployment, in order.
var ecsEvents = []string{"BeforeInstall", "Install", "AfterInstall", "AllowTestTraffic", "AfterAllowTestTraffic",
	"BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic"}

// Predefined ECS deployment configs.
var ecsConfigs = map[string]TrafficRouting{
	"CodeDeployDefault.ECSAllAtOnce":                    {Type: "AllAtOnce"},
	"CodeDeployDefault.ECSCanary10Percent5Minutes":      {Type: "TimeBasedCanary", Percent: 10, Minutes: 5},
	"CodeDeployDefault.ECSCanary10Percent15Minutes":     {Type: "TimeBasedCanary", Percent: 10, Minutes: 15},
	"CodeDeployDefault.ECSLinear10PercentEvery1Minutes": {Type: "TimeBasedLinear", Percent: 10, Minutes: 1},
	"CodeDeployDefault.ECSLinear10PercentEvery3Minutes": {Type: "TimeBasedLinear", Percent: 10, Minutes: 3},
}

// NewCodeDeploy registers a CodeDeploy fake on s.
func NewCodeDeploy(s *Server) *CodeDeploy {
	c := &CodeDeploy{s: s, Step: 10 * time.Millisecond, Minute: 50 * time.Millisecond,
		groups: map[string]*DeploymentGroup{}, configs: map[string]TrafficRouting{}, deployments: map[string]*Deployment{}}
	for name, h := range c.handlers() {
		s.Handle("CodeDeploy_20141006."+name, func(r *Request) (any, error) {
			c.advance(r.Now)
			return h(r)
		})
	}
	return c
}

// AddGroup creates an application's deployment group.
func (c *CodeDeploy) AddGroup(g DeploymentGroup) {
	if g.Config == "" {
		g.Config = "CodeDeployDefault.ECSAllAtOnce"
	}
	c.s.Do(func() { c.groups[g.App+"/"+g.Name] = &g })
}

// FailNext makes the next deployment created by a user fail at the end
// of lifecycle event (for AllowTraffic: at the end of its first traffic
// step), as a failing hook or an alarm would, with message.
func (c *CodeDeploy) FailNext(event, message string) {
	c.s.Do(func() { c.fail = &failure{event: event, message: message} })
}

// Deployments returns copies of every deployment, oldest first. Call it
// outside Server.Do and Server.Wait's condition; inside them use
// DeploymentsLocked.
func (c *CodeDeploy) Deployments() []Deployment {
	var out []Deployment
	c.s.Do(func() { out = c.DeploymentsLocked() })
	return out
}

// DeploymentsLocked is Deployments for a caller holding the Server's
// lock (in a Wait condition or a Do function).
func (c *CodeDeploy) DeploymentsLocked() []Deployment {
	out := make([]Deployment, 0, len(c.order))
	for _, id := range c.order {
		d := *c.deployments[id]
		d.Events = slices.Clone(d.Events)
		out = append(out, d)
	}
	return out
}

func (c *CodeDeploy) newID() string {
	c.seq++
	return fmt.Sprintf("d-FAKE%05d", c.seq)
}

func terminal(status string) bool {
	return status == "Succeeded" || status == "Failed" || status == "Stopped"
}

// start adds a deployment in status Created.
func (c *CodeDeploy) start(d *Deployment, now time.Time, routing TrafficRouting) {
	d.ID, d.Status, d.Created, d.cur = c.newID(), "Created", now, -1
	d.next = now.Add(c.Step)
	for _, name := range ecsEvents {
		d.Events = append(d.Events, LifecycleEvent{Name: name, Status: "Pending"})
	}
	d.shift, d.hold = c.steps(routing)
	c.deployments[d.ID] = d
	c.order = append(c.order, d.ID)
}

// steps returns the weights AllowTraffic moves green through and how
// long each step below 100 is held.
func (c *CodeDeploy) steps(r TrafficRouting) ([]int, time.Duration) {
	hold := time.Duration(r.Minutes) * c.Minute
	switch r.Type {
	case "TimeBasedCanary":
		return []int{r.Percent, 100}, hold
	case "TimeBasedLinear":
		var out []int
		for w := r.Percent; w < 100 && r.Percent > 0; w += r.Percent {
			out = append(out, w)
		}
		return append(out, 100), hold
	}
	return []int{100}, 0
}

// advance moves every deployment forward to now.
func (c *CodeDeploy) advance(now time.Time) {
	for changed := true; changed; {
		changed = false
		for _, id := range c.order {
			d := c.deployments[id]
			if !terminal(d.Status) && !now.Before(d.next) {
				c.tick(d)
				changed = true
			}
		}
	}
}

// tick ends what d is doing at d.next and starts the next thing.
func (c *CodeDeploy) tick(d *Deployment) {
	at := d.next
	if d.cur < 0 {
		d.Status, d.Started, d.cur = "InProgress", at, 0
		c.begin(d, at)
		return
	}
	ev := &d.Events[d.cur]
	if ev.Name == "AllowTraffic" && len(d.shift) > 0 && (d.fail == nil || d.fail.event != ev.Name) {
		c.shiftNext(d, at)
		return
	}
	ev.End = at
	if d.fail != nil && d.fail.event == ev.Name {
		ev.Status, ev.Diagnostic = "Failed", d.fail.message
		code := "HOOK_EXECUTION_FAILURE"
		if ev.Name == "AllowTraffic" {
			code = "ALARM_ACTIVE"
		}
		c.finish(d, at, "Failed", code, fmt.Sprintf("%s failed: %s", ev.Name, d.fail.message), "DEPLOYMENT_FAILURE")
		return
	}
	ev.Status = "Succeeded"
	d.cur++
	if d.cur == len(d.Events) {
		d.Status, d.Completed = "Succeeded", at
		if d.RollbackOf != "" {
			c.deployments[d.RollbackOf].Weight = 0
		}
		return
	}
	c.begin(d, at)
}

// begin starts event d.cur at.
func (c *CodeDeploy) begin(d *Deployment, at time.Time) {
	ev := &d.Events[d.cur]
	ev.Status, ev.Start = "InProgress", at
	d.next = at.Add(c.Step)
	if ev.Name == "AllowTraffic" {
		c.shiftNext(d, at)
	}
}

// shiftNext moves green to AllowTraffic's next weight.
func (c *CodeDeploy) shiftNext(d *Deployment, at time.Time) {
	d.Weight, d.shift = d.shift[0], d.shift[1:]
	if d.Weight < 100 {
		d.next = at.Add(max(d.hold, c.Step))
	} else {
		d.next = at.Add(c.Step)
	}
}

// finish ends d (Failed or Stopped) and starts its rollback when d rolls
// back on event.
func (c *CodeDeploy) finish(d *Deployment, at time.Time, status, code, msg, event string) {
	d.Status, d.ErrorCode, d.ErrorMessage, d.Completed = status, code, msg, at
	for i := range d.Events {
		if d.Events[i].Status == "Pending" {
			d.Events[i].Status = "Skipped"
		} else if d.Events[i].Status == "InProgress" {
			d.Events[i].Status, d.Events[i].End = "Failed", at
		}
	}
	if !slices.Contains(d.AutoRollback, event) {
		return
	}
	rb := &Deployment{App: d.App, Group: d.Group, Config: "CodeDeployDefault.ECSAllAtOnce", Creator: "codeDeployRollback",
		AppSpec: d.AppSpec, RollbackOf: d.ID, Description: "rollback of " + d.ID}
	c.start(rb, at, TrafficRouting{Type: "AllAtOnce"})
	d.RollbackID = rb.ID
	d.RollbackMessage = fmt.Sprintf("Deployment %s was rolled back by deployment %s", d.ID, rb.ID)
	rb.RollbackMessage = fmt.Sprintf("Rolling back deployment %s", d.ID)
}
