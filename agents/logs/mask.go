package logs

import (
	"bytes"
	"io"
	"sort"
)

// Redacted replaces every secret in masked output.
const Redacted = "***"

// Masker replaces every occurrence of its secrets with Redacted, also when
// an occurrence is split across Write calls. It holds back at most
// len(longest secret)-1 bytes that may begin a secret until the next Write
// shows whether they do; Close writes them out.
//
// Where secrets overlap, the leftmost occurrence wins and, at one position,
// the longest: the result does not depend on how the input was chunked.
type Masker struct {
	dst     io.Writer
	secrets [][]byte // longest first
	first   []byte   // distinct first bytes of secrets
	isFirst [256]bool
	pending []byte // held back: a possible prefix of a secret and what follows
	out     []byte // scratch
	set     *Set   // when set, secrets follow it (refresh)
	version int    // the set's version secrets were made from
}

// NewMasker returns a Masker writing to dst. Empty secrets are ignored.
func NewMasker(dst io.Writer, secrets []string) *Masker {
	m := &Masker{dst: dst}
	m.reset(secrets)
	return m
}

// MaskSet returns a Filter that masks the secrets of set, including those
// added to it later (see NewSetMasker).
func MaskSet(set *Set) Filter {
	return func(dst io.Writer) io.WriteCloser { return NewSetMasker(dst, set) }
}

// NewSetMasker returns a Masker of the secrets of set; a secret added to
// set is masked from the next Write on.
func NewSetMasker(dst io.Writer, set *Set) *Masker {
	m := &Masker{dst: dst, set: set}
	m.refresh()
	return m
}

func (m *Masker) refresh() {
	if m.set == nil {
		return
	}
	vals, v := m.set.snapshot()
	if v != m.version || m.secrets == nil {
		m.version = v
		m.reset(vals)
	}
}

func (m *Masker) reset(secrets []string) {
	m.secrets, m.first, m.isFirst = nil, nil, [256]bool{}
	seen := map[string]bool{}
	for _, s := range secrets {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		m.secrets = append(m.secrets, []byte(s))
		if !m.isFirst[s[0]] {
			m.isFirst[s[0]] = true
			m.first = append(m.first, s[0])
		}
	}
	sort.SliceStable(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
}

// Write masks p and writes out all that can no longer be part of a secret.
// It reports len(p) on success.
func (m *Masker) Write(p []byte) (int, error) {
	m.refresh()
	if len(m.secrets) == 0 && len(m.pending) == 0 {
		return m.dst.Write(p)
	}
	buf := p
	if len(m.pending) > 0 {
		buf = append(m.pending, p...)
	}
	rest := m.scan(buf, false)
	m.pending = append(m.pending[:0:0], rest...)
	if err := m.flushOut(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes out what Write held back. It does not close dst.
func (m *Masker) Close() error {
	if len(m.pending) == 0 {
		return nil
	}
	m.scan(m.pending, true)
	m.pending = nil
	return m.flushOut()
}

func (m *Masker) flushOut() error {
	if len(m.out) == 0 {
		return nil
	}
	_, err := m.dst.Write(m.out)
	m.out = m.out[:0]
	return err
}

// scan appends the masked form of buf to m.out and returns the tail it
// could not decide on yet (empty when final).
func (m *Masker) scan(buf []byte, final bool) []byte {
	i := 0
	for i < len(buf) {
		j := m.indexFirst(buf[i:])
		if j < 0 {
			m.out = append(m.out, buf[i:]...)
			return nil
		}
		m.out = append(m.out, buf[i:i+j]...)
		i += j
		matched, hold := m.matchAt(buf[i:], final)
		switch {
		case hold:
			return buf[i:]
		case matched > 0:
			m.out = append(m.out, Redacted...)
			i += matched
		default:
			m.out = append(m.out, buf[i])
			i++
		}
	}
	return nil
}

// indexFirst returns the index of the first byte in b that starts a
// secret, or -1. (bytes.IndexAny would decode UTF-8 and miss bytes of
// invalid sequences.)
func (m *Masker) indexFirst(b []byte) int {
	if len(m.first) == 1 {
		return bytes.IndexByte(b, m.first[0])
	}
	for i, c := range b {
		if m.isFirst[c] {
			return i
		}
	}
	return -1
}

// matchAt reports the length of the longest secret at the start of b, or
// hold when a longer secret than any full match may still complete once
// more input arrives.
func (m *Masker) matchAt(b []byte, final bool) (matched int, hold bool) {
	for _, s := range m.secrets { // longest first
		if len(b) >= len(s) {
			if bytes.Equal(b[:len(s)], s) {
				return len(s), false
			}
			continue
		}
		if !final && bytes.HasPrefix(s, b) {
			return 0, true
		}
	}
	return 0, false
}

// MaskString masks s in one piece, with the same rules as Masker.
func MaskString(s string, secrets []string) string {
	var b bytes.Buffer
	m := NewMasker(&b, secrets)
	m.Write([]byte(s)) //nolint:errcheck // bytes.Buffer does not fail
	m.Close()          //nolint:errcheck
	return b.String()
}
