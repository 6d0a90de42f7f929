package logs

import (
	"fmt"
	"io"
)

// DefaultStepMax is the default cap on one step's log an agent sends
// (runnel agent --step-log-max): a step printing gigabytes must not fill
// the server's disk. The step keeps running; its log ends with a line
// saying it was truncated.
const DefaultStepMax = 100 << 20

// TruncationNote is the line that ends a log cut at max bytes. The
// server's log store ends a log it cuts with the same line, so a log cut
// by both at the same size reads as cut once.
func TruncationNote(max int64) []byte {
	return fmt.Appendf(nil, "\n[runnel: log truncated at %d bytes]\n", max)
}

// Limit returns a Filter that caps output at max bytes (see NewLimitWriter).
func Limit(max int64) Filter {
	return func(dst io.Writer) io.WriteCloser { return NewLimitWriter(dst, max) }
}

// LimitWriter passes on the first max bytes, then one line saying the log
// was truncated, and discards the rest. It keeps reporting success, so a
// chatty step is not failed by a write error.
type LimitWriter struct {
	dst     io.Writer
	max     int64
	written int64
	noted   bool
}

// NewLimitWriter returns a LimitWriter.
func NewLimitWriter(dst io.Writer, max int64) *LimitWriter {
	return &LimitWriter{dst: dst, max: max}
}

// Write writes what fits under the cap; it reports len(p) unless dst fails.
func (l *LimitWriter) Write(p []byte) (int, error) {
	room := l.max - l.written
	if room >= int64(len(p)) {
		n, err := l.dst.Write(p)
		l.written += int64(n)
		return n, err
	}
	if room > 0 {
		n, err := l.dst.Write(p[:room])
		l.written += int64(n)
		if err != nil {
			return n, err
		}
	}
	room = max(room, 0)
	if !l.noted {
		l.noted = true
		if _, err := l.dst.Write(TruncationNote(l.max)); err != nil {
			return int(room), err
		}
	}
	return len(p), nil
}

// Close does nothing: LimitWriter holds nothing back. It does not close dst.
func (l *LimitWriter) Close() error { return nil }
