package logs

import (
	"bytes"
	"io"
	"strconv"
)

// Prefix returns a Filter that starts every line with prefix.
func Prefix(prefix string) Filter {
	return func(dst io.Writer) io.WriteCloser { return NewLinePrefixer(dst, prefix, 0) }
}

// ColorPrefix is Prefix with the prefix drawn in an ANSI SGR colour (e.g.
// 36 for cyan).
func ColorPrefix(prefix string, color int) Filter {
	return func(dst io.Writer) io.WriteCloser { return NewLinePrefixer(dst, prefix, color) }
}

// LinePrefixer writes a prefix before every line. Partial lines are passed
// on at once (output stays live); the prefix of a line is written when its
// first byte arrives.
type LinePrefixer struct {
	dst     io.Writer
	prefix  []byte
	midLine bool
	scratch []byte
}

// NewLinePrefixer returns a LinePrefixer; color 0 means no colour.
func NewLinePrefixer(dst io.Writer, prefix string, color int) *LinePrefixer {
	p := []byte(prefix)
	if color > 0 {
		p = []byte("\x1b[" + strconv.Itoa(color) + "m" + prefix + "\x1b[0m")
	}
	return &LinePrefixer{dst: dst, prefix: p}
}

// Write writes p with prefixes; it reports len(p) on success.
func (l *LinePrefixer) Write(p []byte) (int, error) {
	out := l.scratch[:0]
	rest := p
	for len(rest) > 0 {
		if !l.midLine {
			out = append(out, l.prefix...)
			l.midLine = true
		}
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			out = append(out, rest...)
			break
		}
		out = append(out, rest[:i+1]...)
		rest = rest[i+1:]
		l.midLine = false
	}
	l.scratch = out
	if _, err := l.dst.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends an unterminated last line with a newline, so what follows in
// dst starts on a line of its own. It does not close dst.
func (l *LinePrefixer) Close() error {
	if !l.midLine {
		return nil
	}
	l.midLine = false
	_, err := l.dst.Write([]byte{'\n'})
	return err
}
