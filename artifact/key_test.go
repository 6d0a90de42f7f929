package artifact_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/runnel-ci/runnel/artifact"
)

func TestCleanKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"run/42/stage/out.tar.gz", true},
		{"..a/b..", true},
		{"a/.hidden", true},
		{"sp ace/ü", true},
		{strings.Repeat("a/", 511) + "b", true}, // 1023 bytes
		{"", false},
		{"/etc/passwd", false},
		{"../x", false},
		{"a/../b", false},
		{"a/..", false},
		{".", false},
		{"./a", false},
		{"a/./b", false},
		{"a//b", false},
		{"a/", false},
		{`a\b`, false},
		{`..\..\x`, false},
		{"a\x00b", false},
		{"a\tb", false},
		{"a\x7fb", false},
		{"a\u0085b", false}, // C1 control
		{"\xff\xfe", false},
		{strings.Repeat("a", 1025), false},
		{strings.Repeat("a", artifact.MaxSegmentLen+1), false},
	} {
		got, err := artifact.CleanKey(tc.key)
		if tc.ok {
			if err != nil || got != tc.key {
				t.Errorf("CleanKey(%q) = %q, %v; want the key back", tc.key, got, err)
			}
			continue
		}
		if !errors.Is(err, artifact.ErrBadKey) {
			t.Errorf("CleanKey(%q) = %q, %v; want ErrBadKey", tc.key, got, err)
		}
	}
}

func TestCleanPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"", true}, {"a", true}, {"a/", true}, {"a/b", true},
		{"/", false}, {"a//", false}, {"../", false}, {"a/..", true}, // "a/.." may start "a/..x"
		{"..", true}, {"a/../", false}, {`a\`, false},
	} {
		_, err := artifact.CleanPrefix(tc.prefix)
		if got := err == nil; got != tc.ok {
			t.Errorf("CleanPrefix(%q) error = %v, want ok %v", tc.prefix, err, tc.ok)
		}
	}
}

func FuzzCleanKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/abs", `a\b`, "a//b", "a\x00", "ü/ß", ".", "a/./b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := artifact.CleanKey(s)
		if err != nil {
			if !errors.Is(err, artifact.ErrBadKey) {
				t.Fatalf("CleanKey(%q) error %v does not wrap ErrBadKey", s, err)
			}
			return
		}
		if k != s {
			t.Fatalf("CleanKey(%q) = %q, want the key unchanged", s, k)
		}
		if len(k) > artifact.MaxKeyLen || !utf8.ValidString(k) || strings.HasPrefix(k, "/") || strings.ContainsAny(k, "\\\x00") {
			t.Fatalf("CleanKey accepted %q", k)
		}
		for _, seg := range strings.Split(k, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("CleanKey accepted %q with segment %q", k, seg)
			}
		}
		for _, r := range k {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("CleanKey accepted control character in %q", k)
			}
		}
	})
}
