package scm

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrForeignSource means a clone URL is not one the server may fetch: it
// is neither the repository's registered clone URL nor on its forge's
// host. Whoever sent it must not choose where the server connects.
var ErrForeignSource = errors.New("clone URL is not on the repository's forge")

// DefaultForgeURL is the base URL of the public instance of forge
// (https://github.com, https://gitlab.com), or "" when it has none: a
// Gitea repository names its instance.
func DefaultForgeURL(forge string) string {
	switch forge {
	case ForgeGitHub:
		return "https://github.com"
	case ForgeGitLab:
		return "https://gitlab.com"
	}
	return ""
}

// ParseForgeURL checks that u names a forge instance: an http or https
// URL with a host, no user information, query or fragment; a path (an
// instance served below a prefix) is allowed. It returns u without a
// trailing slash.
func ParseForgeURL(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("forge URL %q: %w", u, err)
	}
	if p.Scheme != "http" && p.Scheme != "https" || p.Host == "" || p.Hostname() == "" {
		return "", fmt.Errorf("forge URL %q: want http(s)://host", u)
	}
	if p.User != nil || p.RawQuery != "" || p.Fragment != "" || p.Opaque != "" {
		return "", fmt.Errorf("forge URL %q: no user, query or fragment allowed", u)
	}
	return strings.TrimRight(u, "/"), nil
}

// OnForge reports whether cloneURL, named by an event, is on the forge
// instance forgeURL (a URL ParseForgeURL accepts): the same scheme, host
// and port, a path below the forge's, and no user information, query or
// fragment. The comparison is on the parsed URL, so "github.com.evil",
// "github.com@evil" and "evil/github.com" do not pass. An error wrapping
// ErrForeignSource says why it is refused.
func OnForge(cloneURL, forgeURL string) error {
	refuse := func(why string) error {
		return fmt.Errorf("clone URL %q %s %q: %w", cloneURL, why, forgeURL, ErrForeignSource)
	}
	f, err := url.Parse(forgeURL)
	if forgeURL == "" || err != nil || f.Host == "" {
		return refuse("cannot be checked: no valid forge URL, got")
	}
	c, err := url.Parse(cloneURL)
	if err != nil {
		return refuse("does not parse; forge")
	}
	if !strings.EqualFold(c.Scheme, f.Scheme) || !strings.EqualFold(c.Host, f.Host) {
		return refuse("is not on the scheme and host of forge")
	}
	if c.User != nil || c.RawQuery != "" || c.Fragment != "" || c.Opaque != "" || c.ForceQuery {
		return refuse("has user information, a query or a fragment; forge")
	}
	base := strings.TrimRight(f.Path, "/") + "/"
	if !strings.HasPrefix(c.Path, base) || len(c.Path) == len(base) || strings.Contains(c.Path, "/../") ||
		strings.HasSuffix(c.Path, "/..") || strings.ContainsAny(c.Path, "\\\x00") {
		return refuse("is not a repository path below forge")
	}
	return nil
}
