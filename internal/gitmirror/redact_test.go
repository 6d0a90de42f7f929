package gitmirror

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, c := range []struct {
		in, want string
		refused  bool
	}{
		{"https://user:tok3n@git.example/acme/app.git", "https://***@git.example/acme/app.git", true},
		{"https://tok3n@github.com/acme/app.git", "https://***@github.com/acme/app.git", true},
		{"HTTP://u:p@h/x", "http://***@h/x", true},
		{"ssh://git:pw@host/acme/app.git", "ssh://***@host/acme/app.git", true},
		{"ssh://git@host/acme/app.git", "ssh://git@host/acme/app.git", false},
		{"git@github.com:acme/app.git", "git@github.com:acme/app.git", false},
		{"https://github.com/acme/app.git", "https://github.com/acme/app.git", false},
		{"/srv/git/app.git", "/srv/git/app.git", false},
	} {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
		if err := CheckNoCredentials(c.in); errors.Is(err, ErrURLCredentials) != c.refused {
			t.Errorf("CheckNoCredentials(%q) = %v, want refused %v", c.in, err, c.refused)
		}
	}
}

// TestErrorsRedactURL: a clone URL stored with credentials (before they
// were refused) never shows its token in fetch or resolve errors.
func TestErrorsRedactURL(t *testing.T) {
	const token = "s3cr3tT0KENvalue"
	url := "https://user:" + token + "@127.0.0.1:1/acme/app.git"
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, ferr := c.Fetch(ctx, Source{URL: url, Commit: strings.Repeat("a", 40), Ref: "refs/heads/main"})
	_, rerr := ResolveRef(ctx, url, "refs/heads/main")
	for _, err := range []error{ferr, rerr} {
		if err == nil {
			t.Fatal("no error from an unreachable remote")
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("error shows the token: %v", err)
		}
		if !strings.Contains(err.Error(), "https://***@127.0.0.1:1/acme/app.git") {
			t.Errorf("error does not name the redacted URL: %v", err)
		}
	}
}
