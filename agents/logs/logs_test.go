package logs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// writeChunks writes s to w in pieces of the given sizes (the last piece
// takes the rest) and closes w.
func writeChunks(t *testing.T, w interface {
	Write([]byte) (int, error)
	Close() error
}, s string, sizes ...int) {
	t.Helper()
	for _, n := range sizes {
		if n > len(s) {
			n = len(s)
		}
		if got, err := w.Write([]byte(s[:n])); err != nil || got != n {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", s[:n], got, err, n)
		}
		s = s[n:]
	}
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMasker(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		chunks  []int
		want    string
	}{
		{"whole", []string{"hunter2"}, "pw=hunter2\n", nil, "pw=***\n"},
		{"split in two", []string{"hunter2"}, "pw=hunter2\n", []int{6}, "pw=***\n"},
		{"split byte by byte", []string{"hunter2"}, "pw=hunter2!", []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, "pw=***!"},
		{"at the very end", []string{"hunter2"}, "x hunter2", []int{5}, "x ***"},
		{"prefix only at end", []string{"hunter2"}, "x hunt", []int{3}, "x hunt"},
		{"false start then match", []string{"abc"}, "aababc", []int{1, 2}, "aab***"},
		{"repeated", []string{"s3"}, "s3s3 s3", []int{1, 3}, "****** ***"},
		{"longest at a position", []string{"ab", "abcd"}, "abcd ab abc", []int{2}, "*** *** ***c"},
		{"shorter inside held prefix", []string{"abcdef", "cd"}, "abcdX", []int{4}, "ab***X"},
		{"multi-line secret", []string{"line1\nline2"}, "a line1\nline2 b", []int{7}, "a *** b"},
		{"no secrets", nil, "hunter2", []int{3}, "hunter2"},
		{"empty secret ignored", []string{""}, "abc", nil, "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			writeChunks(t, NewMasker(&b, tt.secrets), tt.in, tt.chunks...)
			if got := b.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMaskerHoldsBackOnlyPossiblePrefixes(t *testing.T) {
	var b bytes.Buffer
	m := NewMasker(&b, []string{"secret"})
	m.Write([]byte("line one\nsec"))
	if got, want := b.String(), "line one\n"; got != want {
		t.Fatalf("before Close: got %q, want %q", got, want)
	}
	m.Write([]byte("ond\n"))
	if got, want := b.String(), "line one\nsecond\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLinePrefixer(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		chunks []int
		color  int
		want   string
	}{
		{"lines", "a\nb\n", nil, 0, "[x] a\n[x] b\n"},
		{"split mid line", "hello\nworld\n", []int{2, 5, 1}, 0, "[x] hello\n[x] world\n"},
		{"unterminated", "a\nb", []int{3}, 0, "[x] a\n[x] b\n"},
		{"empty lines", "\n\n", []int{1}, 0, "[x] \n[x] \n"},
		{"colour", "a\n", nil, 36, "\x1b[36m[x] \x1b[0ma\n"},
		{"nothing", "", nil, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			writeChunks(t, NewLinePrefixer(&b, "[x] ", tt.color), tt.in, tt.chunks...)
			if got := b.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLimitWriter(t *testing.T) {
	var b bytes.Buffer
	l := NewLimitWriter(&b, 5)
	writeChunks(t, l, "abcdefgh", 3, 3)
	if got, want := b.String(), "abcde\n[runnel: log truncated at 5 bytes]\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

func TestErrorsPropagate(t *testing.T) {
	for name, w := range map[string]interface{ Write([]byte) (int, error) }{
		"masker":   NewMasker(failWriter{}, []string{"zz"}),
		"prefixer": NewLinePrefixer(failWriter{}, "p", 0),
		"limit":    NewLimitWriter(failWriter{}, 10),
	} {
		if _, err := w.Write([]byte("abc\n")); err == nil {
			t.Errorf("%s: got nil error, want disk full", name)
		}
	}
}

func TestChain(t *testing.T) {
	var b bytes.Buffer
	// Masking runs before prefixing, so the prefix cannot hide a secret
	// and a secret split over a line break is still found.
	w := Chain(&b, MaskSet(NewSet("tok\nen")), Prefix("[s] "), Limit(1000))
	writeChunks(t, w, "a tok\nen b\nlast", 4, 3)
	if got, want := b.String(), "[s] a *** b\n[s] last\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzMasker checks, for any input, secrets and chunking, that chunked
// masking equals one-shot masking and that no secret survives.
func FuzzMasker(f *testing.F) {
	f.Add("pw=hunter2 and hunter2", "hunter2", "hun", uint8(3))
	f.Add("aaaaab", "aab", "ab", uint8(1))
	f.Add("x\ny\nz", "\ny", "y\nz", uint8(2))
	f.Fuzz(func(t *testing.T, in, s1, s2 string, step uint8) {
		secrets := []string{s1, s2}
		want := MaskString(in, secrets)
		var b bytes.Buffer
		m := NewMasker(&b, secrets)
		n := int(step%16) + 1
		for rest := in; len(rest) > 0; {
			k := min(n, len(rest))
			m.Write([]byte(rest[:k]))
			rest = rest[k:]
		}
		m.Close()
		if got := b.String(); got != want {
			t.Fatalf("chunks of %d: got %q, want %q", n, got, want)
		}
		for _, s := range secrets {
			// Output is original text and "***"; a secret containing '*'
			// may legitimately be formed from them.
			if s != "" && !strings.Contains(s, "*") && strings.Contains(want, s) {
				t.Fatalf("secret %q survives in %q", s, want)
			}
		}
	})
}

func FuzzLinePrefixer(f *testing.F) {
	f.Add("a\nb\n\nc", uint8(2))
	f.Fuzz(func(t *testing.T, in string, step uint8) {
		var b bytes.Buffer
		l := NewLinePrefixer(&b, "> ", 0)
		n := int(step%16) + 1
		for rest := in; len(rest) > 0; {
			k := min(n, len(rest))
			l.Write([]byte(rest[:k]))
			rest = rest[k:]
		}
		l.Close()
		var want strings.Builder
		if in != "" {
			for _, line := range strings.SplitAfter(strings.TrimSuffix(in, "\n")+"\n", "\n") {
				if line != "" {
					want.WriteString("> " + line)
				}
			}
		}
		if got := b.String(); got != want.String() {
			t.Fatalf("got %q, want %q", got, want.String())
		}
	})
}
