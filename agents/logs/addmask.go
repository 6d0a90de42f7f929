package logs

import (
	"bytes"
	"fmt"
	"io"
)

// AddMaskPrefix starts a line of step output that registers a value for
// masking: a step prints "::add-mask::VALUE" (a token it derived, a
// password it generated) and from that line on VALUE and its Variants are
// masked in every log of the stage. The line itself is passed on as
// "::add-mask::***".
const AddMaskPrefix = "::add-mask::"

// maxAddMask bounds a registration line; a longer one is passed on (and
// masked) as ordinary output.
const maxAddMask = 64 << 10

// AddMask returns a Filter that registers the values of AddMaskPrefix
// lines in set (see NewAddMasker). Put it before the masker of set.
func AddMask(set *Set) Filter {
	return func(dst io.Writer) io.WriteCloser { return NewAddMasker(dst, set) }
}

// AddMasker finds AddMaskPrefix lines in a stream, adds their values to a
// Set and replaces them by the prefix and Redacted. It holds back only a
// line start that may still become the prefix, and a registration line
// until its end.
type AddMasker struct {
	dst     io.Writer
	set     *Set
	line    []byte // held back: the start of a line that is or may become a registration
	midLine bool   // the last byte passed on was not a line break
}

// NewAddMasker returns an AddMasker writing to dst.
func NewAddMasker(dst io.Writer, set *Set) *AddMasker {
	return &AddMasker{dst: dst, set: set}
}

// Write passes p on, minus what it holds back; it reports len(p) unless
// dst fails.
func (a *AddMasker) Write(p []byte) (int, error) {
	n := len(p)
	var out []byte
	for len(p) > 0 {
		if a.midLine && len(a.line) == 0 {
			// Inside an ordinary line: pass on up to its end.
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				out = append(out, p...)
				break
			}
			out = append(out, p[:i+1]...)
			p = p[i+1:]
			a.midLine = false
			continue
		}
		// At a line start, or holding one back.
		a.line = append(a.line, p[0])
		p = p[1:]
		held := len(a.line)
		switch {
		case held <= len(AddMaskPrefix) && bytes.HasPrefix([]byte(AddMaskPrefix), a.line):
			if a.line[held-1] == '\n' {
				out = append(out, a.flushLine()...)
			}
		case !bytes.HasPrefix(a.line, []byte(AddMaskPrefix)), held > maxAddMask:
			// Not a registration (or too long for one): an ordinary line.
			out = append(out, a.flushLine()...)
		case a.line[held-1] == '\n':
			out = append(out, a.register()...)
		}
	}
	if len(out) > 0 {
		if _, err := a.dst.Write(out); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// flushLine passes the held-back start of an ordinary line on.
func (a *AddMasker) flushLine() []byte {
	out := a.line
	a.line = nil
	a.midLine = out[len(out)-1] != '\n'
	return out
}

// register adds the held-back registration line's value to the set.
func (a *AddMasker) register() []byte {
	v := bytes.TrimPrefix(a.line, []byte(AddMaskPrefix))
	v = bytes.TrimSuffix(bytes.TrimSuffix(v, []byte("\n")), []byte("\r"))
	a.line, a.midLine = nil, false
	switch {
	case len(v) == 0:
		return []byte(AddMaskPrefix + "\n")
	case len(v) < MinSecret:
		// Too short to mask usefully: refused, and said so (without it).
		return []byte(fmt.Sprintf("%s%s\n[runnel: ::add-mask:: refused a value of %d bytes; values must have at least %d]\n",
			AddMaskPrefix, Redacted, len(v), MinSecret))
	}
	a.set.Add(string(v))
	return []byte(AddMaskPrefix + Redacted + "\n")
}

// Close passes on what is held back: an unterminated registration line
// registers its value. It does not close dst.
func (a *AddMasker) Close() error {
	if len(a.line) == 0 {
		return nil
	}
	var out []byte
	if bytes.HasPrefix(a.line, []byte(AddMaskPrefix)) && len(a.line) > len(AddMaskPrefix) {
		out = bytes.TrimSuffix(a.register(), []byte("\n"))
	} else {
		out = a.flushLine()
	}
	_, err := a.dst.Write(out)
	return err
}
