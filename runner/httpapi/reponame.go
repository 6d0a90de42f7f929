package httpapi

import "encoding/json"

// repoFromPayload finds the repository name in an unverified forge
// payload, only to choose the secret that then verifies it: GitHub's and
// Gitea's repository.full_name, else GitLab's project.path_with_namespace.
// It does not decode the payload: a byte scanner skips to the member it
// needs and only that string is unmarshalled (a full decode cost more
// than the rest of the lookup). Malformed input gives "" (then no secret
// is found and the hook answers 401). Hooks that name the repo in the
// URL (/hooks/{forge}/{owner}/{name}) skip it.
func repoFromPayload(body []byte) string {
	if name := nameAt(body, "repository", "full_name"); name != "" {
		return name
	}
	return nameAt(body, "project", "path_with_namespace")
}

// nameAt returns the string body.outer.inner, or "".
func nameAt(body []byte, outer, inner string) string {
	v := member(body, outer)
	if v == nil {
		return ""
	}
	raw := member(v, inner)
	var s string
	if raw == nil || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// member returns the raw value of the member named key of the JSON object
// obj (compared with the key as written, without unescaping), or nil when
// obj is not an object, has no such member, or is malformed before it.
func member(obj []byte, key string) []byte {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil
		}
		end := skipString(obj, i)
		if end < 0 {
			return nil
		}
		name := obj[i+1 : end-1]
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return nil
		}
		i = skipSpace(obj, i+1)
		vend := skipJSONValue(obj, i)
		if vend < 0 {
			return nil
		}
		if string(name) == key {
			return obj[i:vend]
		}
		i = skipSpace(obj, vend)
		if i >= len(obj) || obj[i] != ',' {
			return nil
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"'),
// or -1 if it does not end.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipJSONValue returns the index after the value starting at b[i], or
// -1 if it does not end. It checks nesting and strings, not full syntax:
// the payload is parsed for real after its signature was verified.
func skipJSONValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default: // number, true, false, null
		start := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\t' && b[i] != '\r' {
			i++
		}
		if i == start {
			return -1
		}
		return i
	}
}
