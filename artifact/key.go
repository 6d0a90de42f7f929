package artifact

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Key limits. S3 allows 1024 bytes per key; segments stay well below the
// 255-byte file name limit of common filesystems so that artifact/fs can
// add its suffixes.
const (
	MaxKeyLen     = 1024
	MaxSegmentLen = 200
)

// CleanKey checks an untrusted key and returns it unchanged when it is
// acceptable. Keys come from pipeline files and from paths inside uploaded
// archives, so CleanKey refuses rather than normalises: a key is a
// slash-separated relative path of non-empty segments, valid UTF-8, at most
// MaxKeyLen bytes, each segment at most MaxSegmentLen bytes, with no "." or
// ".." segment, no leading or trailing slash, no backslash, and no NUL,
// control or DEL characters. Errors wrap ErrBadKey.
func CleanKey(s string) (string, error) {
	if err := checkKey(s); err != nil {
		return "", fmt.Errorf("%w %q: %s", ErrBadKey, truncate(s), err)
	}
	return s, nil
}

type keyError string

func (e keyError) Error() string { return string(e) }

func checkKey(s string) error {
	switch {
	case s == "":
		return keyError("empty")
	case len(s) > MaxKeyLen:
		return keyError(fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	case !utf8.ValidString(s):
		return keyError("not valid UTF-8")
	case s[0] == '/':
		return keyError("absolute path")
	}
	for _, c := range s {
		switch {
		case c == '\\':
			return keyError("contains a backslash")
		case c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0):
			return keyError("contains a control character")
		}
	}
	for seg := range strings.SplitSeq(s, "/") {
		switch {
		case seg == "":
			return keyError("empty path segment")
		case seg == "." || seg == "..":
			return keyError(fmt.Sprintf("%q segment", seg))
		case len(seg) > MaxSegmentLen:
			return keyError(fmt.Sprintf("segment longer than %d bytes", MaxSegmentLen))
		}
	}
	return nil
}

// CleanPrefix checks a List prefix: "" or a string that could start a valid
// key (its last segment may be empty or partial).
func CleanPrefix(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if err := checkKey(p + "x"); err != nil {
		return "", fmt.Errorf("%w: prefix %q: %s", ErrBadKey, truncate(p), err)
	}
	return p, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
