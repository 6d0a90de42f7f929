package transfers

import (
	"strings"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	s := signer{key: []byte(strings.Repeat("k", 32))}
	now := time.Unix(1_800_000_000, 0)
	c := claims{Run: 7, Stage: "test[go=1.22]", Attempt: 2, CacheWrite: true, Expires: now.Add(time.Hour).Unix()}
	tok := s.token(c)
	got, err := s.parse(tok, now)
	if err != nil || got != c {
		t.Fatalf("parse(token(c)) = %+v, %v; want %+v", got, err, c)
	}
	other := signer{key: []byte(strings.Repeat("x", 32))}
	for name, bad := range map[string]string{
		"other key":   other.token(c),
		"no dot":      strings.ReplaceAll(tok, ".", ""),
		"swapped":     tok[strings.Index(tok, ".")+1:] + "." + tok[:strings.Index(tok, ".")],
		"extra claim": s.token(c)[:len(tok)-2] + "AA",
		"empty":       "",
	} {
		if _, err := s.parse(bad, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := s.parse(tok, now.Add(2*time.Hour)); err == nil {
		t.Error("an expired token was accepted")
	}
}

// FuzzToken: parse never panics and accepts nothing but what the signer
// made, unchanged.
func FuzzToken(f *testing.F) {
	s := signer{key: []byte(strings.Repeat("k", 32))}
	now := time.Unix(1_800_000_000, 0)
	good := s.token(claims{Run: 1, Stage: "build", Attempt: 1, Expires: now.Unix() + 60})
	f.Add(good)
	f.Add("a.b")
	f.Add(strings.Repeat(".", 3000))
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.parse(tok, now)
		if err != nil {
			return
		}
		if s.token(c) != tok {
			t.Fatalf("accepted %q, which the signer did not make (claims %+v)", tok, c)
		}
	})
}
