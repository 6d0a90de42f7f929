package scm

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestOnForge(t *testing.T) {
	tests := []struct {
		clone, forge string
		ok           bool
	}{
		{"https://github.com/acme/web.git", "https://github.com", true},
		{"https://GitHub.com/acme/web.git", "https://github.com", true},
		{"https://github.com/acme/web.git", "https://github.com/", true},
		{"http://gitea.local:3000/acme/web.git", "http://gitea.local:3000", true},
		{"https://git.example.com/gitlab/acme/web.git", "https://git.example.com/gitlab", true},

		{"http://github.com/acme/web.git", "https://github.com", false},           // scheme
		{"https://github.com.evil.com/acme/web.git", "https://github.com", false}, // another host
		{"https://github.com@127.0.0.1/acme/web.git", "https://github.com", false},
		{"https://user:pw@github.com/acme/web.git", "https://github.com", false},
		{"https://github.com:8443/acme/web.git", "https://github.com", false}, // another port
		{"http://gitea.local/acme/web.git", "http://gitea.local:3000", false},
		{"https://127.0.0.1/acme/web.git", "https://github.com", false},
		{"https://github.com/", "https://github.com", false},
		{"https://github.com", "https://github.com", false},
		{"https://github.com/acme/web.git?x=1", "https://github.com", false},
		{"https://github.com/acme/web.git#f", "https://github.com", false},
		{"https://git.example.com/other/acme/web.git", "https://git.example.com/gitlab", false},
		{"https://git.example.com/gitlab/../acme/web.git", "https://git.example.com/gitlab", false},
		{"https://git.example.com/gitlabx/acme/web.git", "https://git.example.com/gitlab", false},
		{"/srv/git/web.git", "https://github.com", false},
		{"file:///srv/git/web.git", "https://github.com", false},
		{"git@github.com:acme/web.git", "https://github.com", false},
		{"ssh://git@github.com/acme/web.git", "https://github.com", false},
		{"ext::sh -c touch% /tmp/x", "https://github.com", false},
		{"https://github.com/acme/web.git", "", false},
		{"", "https://github.com", false},
	}
	for _, tc := range tests {
		err := OnForge(tc.clone, tc.forge)
		if (err == nil) != tc.ok {
			t.Errorf("OnForge(%q, %q): got %v, want ok=%v", tc.clone, tc.forge, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrForeignSource) {
			t.Errorf("OnForge(%q, %q): error %v does not wrap ErrForeignSource", tc.clone, tc.forge, err)
		}
	}
}

func TestParseForgeURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"https://github.com", "https://github.com", true},
		{"https://gitea.example.com:3000/", "https://gitea.example.com:3000", true},
		{"http://git.local/gitlab", "http://git.local/gitlab", true},
		{"ftp://github.com", "", false},
		{"github.com", "", false},
		{"https://", "", false},
		{"https://u:p@github.com", "", false},
		{"https://github.com?x", "", false},
		{"https://github.com#x", "", false},
	} {
		got, err := ParseForgeURL(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseForgeURL(%q): got %q %v, want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzOnForge: a clone URL OnForge accepts is on the forge's host, has
// no user information, and its path is below the forge's.
func FuzzOnForge(f *testing.F) {
	f.Add("https://github.com/acme/web.git", "https://github.com")
	f.Add("https://github.com@127.0.0.1/x", "https://github.com")
	f.Add("http://h:1/p/../q", "http://h:1/p")
	f.Fuzz(func(t *testing.T, clone, forge string) {
		if OnForge(clone, forge) != nil {
			return
		}
		c, err := url.Parse(clone)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", clone, err)
		}
		fu, _ := url.Parse(forge)
		if !strings.EqualFold(c.Host, fu.Host) || c.User != nil || !strings.HasPrefix(c.Path, strings.TrimRight(fu.Path, "/")+"/") {
			t.Fatalf("accepted %q for forge %q", clone, forge)
		}
	})
}
