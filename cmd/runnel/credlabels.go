package main

import (
	"maps"
	"sync"

	"github.com/runnel-ci/runnel/runner"
	"github.com/runnel-ci/runnel/runner/natsserver"
)

var _ runner.Credentials = (*credLabels)(nil)

// credLabels are the labels each agent credential allows, for the
// runner's check of claims (runner.Credentials): those of
// DATA/nats-agents.json and the built-in agent's, replaced at each load.
type credLabels struct {
	mu     sync.RWMutex
	labels map[string]map[string]string
}

// set replaces the credentials.
func (c *credLabels) set(agents []natsserver.AgentCredential) {
	m := make(map[string]map[string]string, len(agents))
	for _, a := range agents {
		m[a.Name] = maps.Clone(a.Labels)
	}
	c.mu.Lock()
	c.labels = m
	c.mu.Unlock()
}

// AgentLabels implements runner.Credentials.
func (c *credLabels) AgentLabels(name string) (map[string]string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	l, ok := c.labels[name]
	return l, ok
}
