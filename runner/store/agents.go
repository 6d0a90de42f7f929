package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Agent is an agent as last reported by its heartbeat.
type Agent struct {
	Name     string // unique
	Labels   map[string]string
	Capacity int // stages it runs at once
	Version  string
	State    string // free text from the agent, e.g. "ready", "draining"
	LastSeen time.Time
}

// UpsertAgent creates or replaces the agent named a.Name. A zero LastSeen
// is set to now.
func (s *Store) UpsertAgent(ctx context.Context, a Agent) error {
	if a.Name == "" {
		return fmt.Errorf("upsert agent: name is required")
	}
	if a.LastSeen.IsZero() {
		a.LastSeen = s.now()
	}
	labels, err := json.Marshal(nonNilMap(a.Labels))
	if err != nil {
		return fmt.Errorf("upsert agent %s: %w", a.Name, err)
	}
	_, err = s.w.ExecContext(ctx, s.rebind(`INSERT INTO agents (name, labels, capacity, version, state, last_seen)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET labels = excluded.labels,
		capacity = excluded.capacity, version = excluded.version, state = excluded.state, last_seen = excluded.last_seen`),
		a.Name, string(labels), a.Capacity, a.Version, a.State, a.LastSeen.UnixMicro())
	if err != nil {
		return fmt.Errorf("upsert agent %s: %w", a.Name, err)
	}
	return nil
}

// Agents lists agents ordered by name.
func (s *Store) Agents(ctx context.Context) ([]*Agent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, labels, capacity, version, state, last_seen FROM agents ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []*Agent
	for rows.Next() {
		var a Agent
		var labels string
		var seen sql.NullInt64
		if err := rows.Scan(&a.Name, &labels, &a.Capacity, &a.Version, &a.State, &seen); err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		if err := json.Unmarshal([]byte(labels), &a.Labels); err != nil {
			return nil, fmt.Errorf("list agents: labels of %s: %w", a.Name, err)
		}
		a.LastSeen = fromTS(seen)
		out = append(out, &a)
	}
	return out, rows.Err()
}

// DeleteAgent forgets an agent.
func (s *Store) DeleteAgent(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, s.rebind(`DELETE FROM agents WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("delete agent %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete agent %s: %w", name, ErrNotFound)
	}
	return nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
