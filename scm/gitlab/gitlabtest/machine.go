package gitlabtest

import "fmt"

// transition is one event of GitLab's commit status state machine
// (app/models/commit_status.rb): the states it may fire from and the
// state it leads to.
type transition struct {
	name string
	from []string
	to   string
}

// event is what the API does for one requested state: "running" fires
// enqueue where it can (a new status goes created → pending) and then run.
type event struct {
	soft *transition // fired when possible, never an error
	hard transition
}

var (
	enqueue = transition{"enqueue", []string{"created", "skipped", "manual", "scheduled"}, "pending"}
	run     = transition{"run", []string{"pending"}, "running"}
	success = transition{"success", []string{"created", "waiting_for_resource", "preparing", "pending", "running"}, "success"}
	drop    = transition{"drop", []string{"created", "waiting_for_resource", "preparing", "pending", "running", "manual", "scheduled"}, "failed"}
	cancel  = transition{"cancel", []string{"created", "waiting_for_resource", "preparing", "pending", "running", "manual", "scheduled"}, "canceled"}
	skip    = transition{"skip", []string{"created", "waiting_for_resource", "preparing", "pending"}, "skipped"}
)

// events maps the API's state parameter onto what it fires.
var events = map[string]event{
	"pending":  {hard: enqueue},
	"running":  {soft: &enqueue, hard: run},
	"success":  {hard: success},
	"failed":   {hard: drop},
	"canceled": {hard: cancel},
	"skipped":  {hard: skip},
}

func (t transition) allowed(from string) bool {
	for _, f := range t.from {
		if f == from {
			return true
		}
	}
	return false
}

// fire returns the state after the event, or GitLab's error text.
func (e event) fire(from string) (string, error) {
	if e.soft != nil && e.soft.allowed(from) {
		from = e.soft.to
	}
	if !e.hard.allowed(from) {
		return "", fmt.Errorf("Cannot transition status via :%s from :%s (Reason(s): Status cannot transition via %q)", e.hard.name, from, e.hard.name)
	}
	return e.hard.to, nil
}
