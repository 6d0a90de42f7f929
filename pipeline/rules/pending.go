package rules

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Hold is what keeps a stage that has not started from running, as plain
// values: PendingReason turns it into the text the API and the UI show.
type Hold struct {
	Needs       []string          // needs not finished yet
	Approval    bool              // waits for a person's approval
	Concurrency string            // a concurrency group another stage holds
	Queued      bool              // handed to the bus: waits for an agent
	Labels      map[string]string // the labels an agent must have (Queued)
}

// AgentLoad is a connected agent as PendingReason sees it.
type AgentLoad struct {
	Labels   map[string]string
	Capacity int // stages at once; 0: unknown, never counted busy
	Running  int
}

// PendingReason says why a stage waits, or "" when nothing holds it (a
// queued stage that a capable agent with room is about to take). The
// first that applies wins: needs, approval, concurrency group, then for a
// queued stage the agents: none connected, none with the labels, every
// capable one busy.
func PendingReason(h Hold, agents []AgentLoad) string {
	switch {
	case len(h.Needs) > 0:
		return "waiting for needs: " + strings.Join(h.Needs, ", ")
	case h.Approval:
		return "waiting for approval"
	case h.Concurrency != "":
		return "waiting for concurrency group " + h.Concurrency
	case !h.Queued:
		return ""
	}
	capable, busy, running, capacity := 0, 0, 0, 0
	for _, a := range agents {
		if !HasLabels(a.Labels, h.Labels) {
			continue
		}
		capable++
		running += a.Running
		capacity += a.Capacity
		if a.Capacity > 0 && a.Running >= a.Capacity {
			busy++
		}
	}
	switch {
	case capable == 0 && len(h.Labels) == 0:
		return "no agent connected"
	case capable == 0:
		kv := make([]string, 0, len(h.Labels))
		for _, k := range slices.Sorted(maps.Keys(h.Labels)) {
			kv = append(kv, k+"="+h.Labels[k])
		}
		return "no agent with labels " + strings.Join(kv, ",")
	case busy == capable:
		return fmt.Sprintf("all capable agents busy (%d running, capacity %d)", running, capacity)
	}
	return ""
}

// HasLabels reports whether an agent with labels have may run a stage
// that asks for want: it has every wanted label with the same value.
func HasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
