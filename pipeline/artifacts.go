package pipeline

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits of the keys that move files into and out of a workspace.
const (
	MaxArtifactPaths = 100
	MaxFetches       = 32
	MaxCaches        = 8
	MaxCachePaths    = 32
	MaxCacheFiles    = 32
	MaxCacheFallback = 8
	MaxCacheKeyLen   = 128
	MaxFetchURLLen   = 2048
	// MaxArtifactExpiry is the longest artifacts.expire_in.
	MaxArtifactExpiry = 3650 * 24 * time.Hour
	maxPathLen        = 1024
)

// Artifacts says what a stage uploads after its steps: the files that
// match Paths (files, directories or globs relative to the workspace),
// when the stage's own outcome matches When. Stages that receive them
// (Stage.Receive) find them at the same paths in their workspace.
type Artifacts struct {
	Paths []string `json:"paths"`
	// When is success (the default: only a stage that succeeded uploads),
	// failure or always.
	When RunOn `json:"when"`
	// ExpireIn is how long the server keeps them; 0 means its default.
	ExpireIn Duration `json:"expire_in,omitempty"`
}

// Fetch is a file downloaded into the workspace before the first step,
// verified against its SHA-256 and kept by checksum, so that the next run
// gets it without the network.
type Fetch struct {
	URL    string `json:"url"`    // http or https
	SHA256 string `json:"sha256"` // lowercase hex
	Dest   string `json:"dest"`   // path in the workspace
}

// Cache is a set of workspace paths restored before the steps and saved
// after a successful stage when its key missed. The key is Key, or, when
// Files is set, Key + "-" + a hash of the files matching those globs (see
// agents/transfer). On a miss the newest entry whose key starts with a
// Fallback prefix (tried in order) is restored instead.
type Cache struct {
	Key      string   `json:"key"`
	Files    []string `json:"files,omitempty"`
	Fallback []string `json:"fallback,omitempty"`
	Paths    []string `json:"paths"`
}

var (
	cacheKeyRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// cleanPath checks a path (or, with glob, a pattern) relative to the
// workspace and returns it without a leading "./" and a trailing "/". The
// empty problem means it is fine. Names like "foo..bar" and ".hidden" are
// fine; anything that could leave the workspace is not.
func cleanPath(p string, glob bool) (string, string) {
	q := strings.TrimSuffix(strings.TrimPrefix(p, "./"), "/")
	switch {
	case q == "" || q == ".":
		return "", "names no file; give a path relative to the workspace"
	case len(q) > maxPathLen:
		return "", fmt.Sprintf("is longer than %d bytes", maxPathLen)
	case !utf8.ValidString(q):
		return "", "is not valid UTF-8"
	case q[0] == '/' || q[0] == '~':
		return "", "is absolute; paths are relative to the workspace"
	case strings.ContainsRune(q, '\\'):
		return "", "contains a backslash; use /"
	case strings.ContainsFunc(q, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }):
		return "", "contains a control character"
	}
	for seg := range strings.SplitSeq(q, "/") {
		switch seg {
		case "":
			return "", "has an empty segment (//)"
		case ".", "..":
			return "", fmt.Sprintf("has a %q segment; paths must stay inside the workspace", seg)
		}
	}
	if glob {
		if err := ValidGlob(q); err != nil {
			return "", fmt.Sprintf("is not a valid glob: %v", err)
		}
	}
	return q, ""
}

// paths reads a string or list of workspace paths or globs.
func (ps *parser) paths(n *yaml.Node, what string, max int) []string {
	vals, nodes := ps.strList(n, what)
	if len(vals) > max {
		ps.errorf(ps.resolve(n), CodeBadValue, "%s lists %d paths; the limit is %d", what, len(vals), max)
		return nil
	}
	var out []string
	for i, v := range vals {
		q, problem := cleanPath(v, true)
		if problem != "" {
			ps.errorf(nodes[i], CodeBadPath, "%s path %q %s", what, v, problem)
			continue
		}
		out = append(out, q)
	}
	return out
}

// artifacts reads a stage's artifacts: a mapping, or a path or list of
// paths as a shorthand for {paths: ...}.
func (ps *parser) artifacts(key, n *yaml.Node) *Artifacts {
	n = ps.resolve(n)
	if n == nil {
		return nil
	}
	a := &Artifacts{When: RunOnSuccess}
	textual := n.Kind == yaml.ScalarNode && n.Tag != "!!bool" && n.Tag != "!!null" && n.Tag != "!!binary"
	if textual || n.Kind == yaml.SequenceNode {
		a.Paths = ps.paths(n, "artifacts", MaxArtifactPaths)
		if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
			ps.errorf(n, CodeMissingField, "artifacts must list at least one path")
		}
		return a
	}
	if n.Kind != yaml.MappingNode {
		ps.errorf(n, CodeWrongType, "artifacts must be a mapping with paths (or a list of paths), got %s", kindName(n))
		return nil
	}
	es := ps.entries(n, 0)
	ps.checkKeys(es, "artifacts", artifactsKeys, nil)
	pathsSeen := false
	for _, e := range es {
		switch e.key.Value {
		case "paths":
			pathsSeen = true
			a.Paths = ps.paths(e.val, "artifacts.paths", MaxArtifactPaths)
			if v := ps.resolve(e.val); v != nil && v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
				ps.errorf(v, CodeMissingField, "artifacts.paths must list at least one path")
			}
		case "when":
			if s, ok := ps.str(e.val, "artifacts.when"); ok {
				switch RunOn(s) {
				case RunOnSuccess, RunOnFailure, RunOnAlways:
					a.When = RunOn(s)
				default:
					ps.errorf(ps.resolve(e.val), CodeBadValue, "artifacts.when %q is not one of success, failure, always", s)
				}
			}
		case "expire_in":
			a.ExpireIn = ps.expiry(e.val)
		}
	}
	if !pathsSeen {
		ps.errorf(key, CodeMissingField, "artifacts needs paths")
	}
	return a
}

// expiry reads a duration that may also be a whole number of days ("30d").
func (ps *parser) expiry(n *yaml.Node) Duration {
	s, ok := ps.str(n, "artifacts.expire_in")
	if !ok {
		return 0
	}
	var d time.Duration
	var err error
	if days, found := strings.CutSuffix(s, "d"); found {
		var k int
		k, err = strconv.Atoi(days)
		d = time.Duration(k) * 24 * time.Hour
		if k > int(MaxArtifactExpiry/(24*time.Hour)) {
			d = MaxArtifactExpiry + 1
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 || d > MaxArtifactExpiry {
		ps.errorf(ps.resolve(n), CodeBadDuration, "artifacts.expire_in %q is not a positive duration like 12h or 30d (at most 3650d)", s)
		return 0
	}
	return Duration(d)
}

// fetches reads a stage's fetch list.
func (ps *parser) fetches(n *yaml.Node) []Fetch {
	n = ps.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		ps.errorf(n, CodeWrongType, "fetch must be a list of mappings with url, sha256 and dest, got %s", kindName(n))
		return nil
	}
	if len(n.Content) > MaxFetches {
		ps.errorf(n, CodeBadValue, "fetch lists %d files; the limit is %d", len(n.Content), MaxFetches)
		return nil
	}
	var out []Fetch
	dests := map[string]int{}
	for _, item := range n.Content {
		m := ps.mapping(item, "a fetch entry")
		if m == nil {
			if ps.tooComplex {
				return out
			}
			continue
		}
		f, at, ok := ps.fetch(m)
		if !ok {
			continue
		}
		if line, dup := dests[f.Dest]; dup {
			ps.errorf(at, CodeDuplicateName, "fetch dest %q is already used on line %d", f.Dest, line)
			continue
		}
		dests[f.Dest] = at.Line
		out = append(out, f)
	}
	return out
}

func (ps *parser) fetch(n *yaml.Node) (Fetch, *yaml.Node, bool) {
	var f Fetch
	es := ps.entries(n, 0)
	ps.checkKeys(es, "fetch", fetchKeys, nil)
	ok := true
	var urlNode, destNode *yaml.Node
	var u *url.URL
	sumSeen := false
	for _, e := range es {
		switch e.key.Value {
		case "url":
			urlNode = ps.resolve(e.val)
			s, good := ps.str(e.val, "fetch url")
			if !good {
				ok = false
				continue
			}
			if u, good = ps.fetchURL(urlNode, s); !good {
				ok = false
				continue
			}
			f.URL = s
		case "sha256":
			sumSeen = true
			s, good := ps.str(e.val, "fetch sha256")
			if good && !sha256RE.MatchString(s) {
				ps.errorf(ps.resolve(e.val), CodeBadValue, "fetch sha256 %q is not 64 hex digits", s)
				good = false
			}
			ok = ok && good
			f.SHA256 = strings.ToLower(s)
		case "dest":
			destNode = ps.resolve(e.val)
			s, good := ps.str(e.val, "fetch dest")
			if !good {
				ok = false
				continue
			}
			q, problem := cleanPath(s, false)
			if problem != "" {
				ps.errorf(destNode, CodeBadPath, "fetch dest %q %s", s, problem)
				ok = false
				continue
			}
			f.Dest = q
		}
	}
	if urlNode == nil {
		ps.errorf(n, CodeMissingField, "fetch entry has no url")
		return f, n, false
	}
	if !sumSeen {
		ps.errorf(n, CodeMissingField, "fetch %s has no sha256; a download is only used when its digest matches", f.URL)
		ok = false
	}
	if ok && destNode == nil {
		// The file keeps the URL's last path segment as its name.
		base := path.Base(u.Path)
		q, problem := cleanPath(base, false)
		if u.Path == "" || strings.HasSuffix(u.Path, "/") || problem != "" {
			ps.errorf(urlNode, CodeMissingField, "fetch %s names no file; set dest", f.URL)
			return f, n, false
		}
		f.Dest = q
	}
	at := n
	if destNode != nil {
		at = destNode
	}
	return f, at, ok
}

// fetchURL checks a fetch URL: absolute http or https with a host, and no
// credentials (the plan is not a secret).
func (ps *parser) fetchURL(n *yaml.Node, s string) (*url.URL, bool) {
	if len(s) > MaxFetchURLLen {
		ps.errorf(n, CodeBadValue, "fetch url is longer than %d bytes", MaxFetchURLLen)
		return nil, false
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		ps.errorf(n, CodeBadValue, "fetch url %q does not parse: %v", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		ps.errorf(n, CodeBadValue, "fetch url %q must start with http:// or https://", s)
	case u.Host == "":
		ps.errorf(n, CodeBadValue, "fetch url %q has no host", s)
	case u.User != nil:
		ps.errorf(n, CodeBadValue, "fetch url %q carries credentials; pipeline files are not secret", u.Redacted())
	default:
		return u, true
	}
	return nil, false
}

// caches reads a stage's cache list.
func (ps *parser) caches(n *yaml.Node) []Cache {
	n = ps.resolve(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		ps.errorf(n, CodeWrongType, "cache must be a list of mappings with key and paths, got %s", kindName(n))
		return nil
	}
	if len(n.Content) > MaxCaches {
		ps.errorf(n, CodeBadValue, "cache lists %d entries; the limit is %d", len(n.Content), MaxCaches)
		return nil
	}
	var out []Cache
	keys := map[string]int{}
	for _, item := range n.Content {
		m := ps.mapping(item, "a cache entry")
		if m == nil {
			if ps.tooComplex {
				return out
			}
			continue
		}
		c, ok := ps.cache(m)
		if !ok {
			continue
		}
		id := c.Key + "\x00" + strings.Join(c.Files, "\x00")
		if line, dup := keys[id]; dup {
			ps.errorf(m, CodeDuplicateName, "cache key %q is already used on line %d", c.Key, line)
			continue
		}
		keys[id] = m.Line
		out = append(out, c)
	}
	return out
}

func (ps *parser) cache(n *yaml.Node) (Cache, bool) {
	var c Cache
	es := ps.entries(n, 0)
	ps.checkKeys(es, "cache", cacheKeys, nil)
	var keySeen, pathsSeen bool
	ok := true
	for _, e := range es {
		switch e.key.Value {
		case "key":
			keySeen = true
			ok = ps.cacheKey(e.val, &c) && ok
		case "fallback":
			vals, nodes := ps.strList(e.val, "cache fallback")
			if len(vals) > MaxCacheFallback {
				ps.errorf(ps.resolve(e.val), CodeBadValue, "cache fallback lists %d prefixes; the limit is %d", len(vals), MaxCacheFallback)
				ok = false
			}
			for i, v := range vals {
				if !ps.keyText(nodes[i], "cache fallback prefix", v) {
					ok = false
				}
			}
			c.Fallback = vals
		case "paths":
			pathsSeen = true
			c.Paths = ps.paths(e.val, "cache paths", MaxCachePaths)
			if len(c.Paths) == 0 {
				ok = false
			}
		}
	}
	if !keySeen {
		ps.errorf(n, CodeMissingField, "cache entry has no key")
		ok = false
	}
	if !pathsSeen {
		ps.errorf(n, CodeMissingField, "cache entry has no paths")
		ok = false
	}
	return c, ok
}

// cacheKey reads key: a literal string, or a mapping {prefix, files}.
func (ps *parser) cacheKey(n *yaml.Node, c *Cache) bool {
	n = ps.resolve(n)
	if n == nil {
		return false
	}
	if n.Kind == yaml.ScalarNode {
		s, ok := ps.str(n, "cache key")
		if !ok || !ps.keyText(n, "cache key", s) {
			return false
		}
		c.Key = s
		return true
	}
	if n.Kind != yaml.MappingNode {
		ps.errorf(n, CodeWrongType, "cache key must be a string or a mapping with prefix and files, got %s", kindName(n))
		return false
	}
	es := ps.entries(n, 0)
	ps.checkKeys(es, "cache key", cacheKeyKeys, nil)
	ok, prefixSeen := true, false
	for _, e := range es {
		switch e.key.Value {
		case "prefix":
			prefixSeen = true
			s, good := ps.str(e.val, "cache key prefix")
			if !good || !ps.keyText(ps.resolve(e.val), "cache key prefix", s) {
				ok = false
			}
			c.Key = s
		case "files":
			c.Files = ps.paths(e.val, "cache key files", MaxCacheFiles)
			if len(c.Files) == 0 {
				ok = false
			}
		}
	}
	if !prefixSeen {
		ps.errorf(n, CodeMissingField, "cache key needs a prefix")
		ok = false
	}
	return ok
}

// keyText checks the characters of a cache key, prefix or fallback.
func (ps *parser) keyText(n *yaml.Node, what, s string) bool {
	if len(s) > MaxCacheKeyLen || !cacheKeyRE.MatchString(s) {
		ps.errorf(n, CodeBadValue, "%s %q must be 1 to %d of [A-Za-z0-9._-]", what, s, MaxCacheKeyLen)
		return false
	}
	return true
}

// checkArtifactsFrom checks each stage's artifacts_from: every name is a
// stage the stage needs, directly or through its needs, and has
// artifacts. It runs after checkNeeds, which leaves only known needs.
func (ps *parser) checkArtifactsFrom(stages []*stageDef) {
	byName := map[string]*stageDef{}
	for _, s := range stages {
		byName[s.name] = s
	}
	for _, s := range stages {
		if !s.fromSet {
			continue
		}
		up := ancestors(s, byName)
		for i, name := range s.from {
			src := byName[name]
			switch {
			case src == nil || !up[name]:
				ps.errorf(s.fromNodes[i], CodeNotANeed, "stage %s takes artifacts from %q, which it does not need; add it to needs (directly or through a need)", s.name, name)
			case src.artifacts == nil:
				ps.errorf(s.fromNodes[i], CodeBadValue, "stage %s takes artifacts from %q, which has no artifacts", s.name, name)
			}
		}
	}
}

// ancestors returns the names of the stages s needs, directly or not.
func ancestors(s *stageDef, byName map[string]*stageDef) map[string]bool {
	seen := map[string]bool{}
	todo := append([]string(nil), s.needs...)
	for len(todo) > 0 {
		n := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[n] || byName[n] == nil {
			continue
		}
		seen[n] = true
		todo = append(todo, byName[n].needs...)
	}
	return seen
}

// receive returns the IDs of the stages whose artifacts st receives: those
// named by artifacts_from, or by default its needs that have artifacts.
// ids maps stage names to the IDs of their expansions in the plan.
func (sd *stageDef) receive(byName map[string]*stageDef, ids map[string][]string) []string {
	var out []string
	if sd.fromSet {
		for _, name := range sd.from {
			out = append(out, ids[name]...)
		}
		return out
	}
	for _, nd := range sd.needs {
		if byName[nd].artifacts != nil {
			out = append(out, ids[nd]...)
		}
	}
	return out
}

// copyTransfers gives st deep copies of sd's artifacts, fetches and caches.
func (sd *stageDef) copyTransfers(st *Stage) {
	if sd.artifacts != nil {
		a := *sd.artifacts
		a.Paths = append([]string(nil), a.Paths...)
		st.Artifacts = &a
	}
	st.Fetch = append([]Fetch(nil), sd.fetch...)
	for _, c := range sd.cache {
		c.Files = append([]string(nil), c.Files...)
		c.Fallback = append([]string(nil), c.Fallback...)
		c.Paths = append([]string(nil), c.Paths...)
		st.Cache = append(st.Cache, c)
	}
}
