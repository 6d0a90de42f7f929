package logs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
)

// MinSecret is the shortest value masked: shorter ones would be masked
// wherever their characters occur and hide little (pipeline.MinSecretLen).
const MinSecret = 6

// minVariant is the shortest encoded form masked: a base64 form at an
// offset keeps only the groups its bytes decide, which can be 4
// characters of a 6-byte secret.
const minVariant = 4

// Variants returns the forms of secret that can appear in a log: the
// value; for a multi-line value (a PEM key) each line, the lines joined
// without breaks, and the value with \n as \r\n and \r\n as \n; base64
// (standard and URL alphabets) of the value starting at each of the three
// byte offsets a surrounding stream can put it at; URL escapes; and JSON
// string escapes. Forms shorter than MinSecret (lines) or 4 (encodings)
// are left out.
func Variants(secret string) []string {
	if secret == "" {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(s string, min int) {
		if len(s) >= min && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	add(secret, 1)
	forms := []string{secret}
	if strings.ContainsAny(secret, "\r\n") {
		lf := strings.ReplaceAll(secret, "\r\n", "\n")
		lines := strings.Split(lf, "\n")
		for _, l := range lines {
			add(l, MinSecret)
		}
		add(strings.Join(lines, ""), MinSecret)
		add(lf, MinSecret)
		add(strings.ReplaceAll(lf, "\n", "\r\n"), MinSecret)
		forms = append(forms, lf, strings.ReplaceAll(lf, "\n", "\r\n"))
	}
	for _, f := range forms {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			add(enc.EncodeToString([]byte(f)), minVariant)
			for off := 0; off < 3 && off < len(f); off++ {
				// A stream that puts f at this offset of a 3-byte group
				// encodes f[off:] group by group: the full groups of f[off:]
				// appear verbatim, whatever comes before or after.
				t := f[off:]
				add(enc.EncodeToString([]byte(t[:len(t)/3*3])), minVariant)
			}
		}
		add(url.QueryEscape(f), minVariant)
		add(url.PathEscape(f), minVariant)
		add(jsonEscape(f, true), minVariant)
		add(jsonEscape(f, false), minVariant)
	}
	return out
}

// jsonEscape returns s as a JSON string without its quotes.
func jsonEscape(s string, html bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(s) // a string always encodes
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// Set is the secrets of one stage: the values the job brought and those
// its steps registered while running (see AddMask), each with its
// Variants. Maskers made from it pick up additions at their next Write.
// It is safe for concurrent use.
type Set struct {
	mu      sync.Mutex
	values  []string // variants of every secret
	seen    map[string]bool
	version int
}

// NewSet returns a Set of secrets. Values shorter than MinSecret are
// masked too (the server refuses them; a local secrets file warns).
func NewSet(secrets ...string) *Set {
	s := &Set{seen: map[string]bool{}}
	for _, v := range secrets {
		s.Add(v)
	}
	return s
}

// Add adds a secret and its variants; it reports false for an empty one.
func (s *Set) Add(secret string) bool {
	if secret == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range Variants(secret) {
		if !s.seen[v] {
			s.seen[v] = true
			s.values = append(s.values, v)
		}
	}
	s.version++
	return true
}

// snapshot returns the values and the version they belong to.
func (s *Set) snapshot() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[:len(s.values):len(s.values)], s.version
}

// Len reports how many values (variants included) the set masks.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.values)
}

// Mask returns text with every value of the set (variants included)
// replaced by Redacted: for short texts that leave the agent or the
// server other than as a log (reasons, error messages).
func (s *Set) Mask(text string) string {
	if text == "" {
		return ""
	}
	vals, _ := s.snapshot()
	return MaskString(text, vals)
}
