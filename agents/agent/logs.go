package agent

import (
	"errors"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
)

var errLogClosed = errors.New("log writer closed")

// logWriter cuts a step's output into LogChunks of at most wire.MaxChunk
// bytes, numbered from 0. Full chunks go out as they fill (Write blocks
// while they are stored, which throttles a step that outruns NATS); a
// partial chunk goes out FlushInterval after its first byte, and at Close
// with the EOF mark.
type logWriter struct {
	r    *reporter
	step string

	mu     sync.Mutex
	buf    []byte
	seq    uint64
	timer  *time.Timer
	closed bool
}

func newLogWriter(r *reporter, step string) *logWriter {
	return &logWriter{r: r, step: step, buf: make([]byte, 0, wire.MaxChunk)}
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, errLogClosed
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), wire.MaxChunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == wire.MaxChunk {
			w.sendLocked(false)
		}
	}
	if len(w.buf) > 0 && w.timer == nil {
		w.timer = time.AfterFunc(w.r.a.cfg.FlushInterval, w.flush)
	}
	return n, nil
}

func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if !w.closed && len(w.buf) > 0 {
		w.sendLocked(false)
	}
}

// sent returns how many chunks were sent (the step's end tells the
// server, which waits for one it failed to store).
func (w *logWriter) sent() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq
}

// Close sends the rest and the EOF mark. It is idempotent.
func (w *logWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.sendLocked(true)
	return nil
}

func (w *logWriter) sendLocked(eof bool) {
	c := wire.LogChunk{
		RunID: w.r.job.RunID, StageID: w.r.job.StageID, Attempt: w.r.job.Attempt, Agent: w.r.a.cfg.Name,
		Step: w.step, Seq: w.seq, Data: w.buf, EOF: eof,
	}
	w.seq++
	b, err := wire.Encode(&c)
	w.buf = w.buf[:0]
	if err != nil {
		w.r.log.Error("encode log chunk", "err", err)
		return
	}
	w.r.waitStarted()
	w.r.publish(wire.LogsSubject(c.RunID, c.Agent), wire.LogMsgID(&c), b)
}
