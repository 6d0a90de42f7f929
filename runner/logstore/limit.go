package logstore

import (
	"bytes"

	"github.com/runnel-ci/runnel/agents/logs"
)

// SetStepMax caps each log at max bytes (0: logs.DefaultStepMax, the
// agents' default too). Logs are untrusted input: an agent that ignores
// its own --step-log-max (an old one, or messages crafted with a stolen
// agent credential) must not fill the server's disk. Past the cap chunks
// are still taken, so they are acknowledged and not delivered again, and
// dropped; the log ends with the agents' truncation note. The cap counts
// bytes in chunk order, so a late chunk is cut where it belongs.
func (s *Store) SetStepMax(max int64) {
	if max <= 0 {
		max = logs.DefaultStepMax
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.max = max
}

// Dropped returns how many bytes of logs were dropped past the cap since
// the store was made.
func (s *Store) Dropped() int64 {
	return s.dropped.Load()
}

// writeLocked writes b, the log's next bytes in chunk order, keeping at
// most s.max bytes in all; at the cap it writes the truncation note once
// and drops (and counts) the rest. An agent that cut the log at the same
// size sent the same note right there: it is not counted as dropped.
func (s *Store) writeLocked(e *entry, b []byte) error {
	if e.cut {
		s.dropped.Add(int64(len(b)))
		return nil
	}
	keep := min(int64(len(b)), max(s.max-e.size, 0))
	n, err := e.f.Write(b[:keep])
	e.size += int64(n)
	if err != nil || keep == int64(len(b)) {
		return err
	}
	e.cut = true
	note := logs.TruncationNote(s.max)
	s.dropped.Add(int64(len(bytes.TrimPrefix(b[keep:], note))))
	_, err = e.f.Write(note)
	return err
}

// hold keeps chunk seq, which came before its predecessors, until they
// arrive. Past the cap it keeps no bytes: they will be dropped.
func (e *entry) hold(s *Store, seq int64, data []byte) {
	if _, held := e.pending[seq]; held {
		return // a redelivery: the same bytes
	}
	if e.cut {
		s.dropped.Add(int64(len(data)))
		e.pending[seq] = nil
		return
	}
	e.pending[seq] = append([]byte(nil), data...)
}
