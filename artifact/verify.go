package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ValidSHA256 reports whether s is a lowercase hex SHA-256 digest.
func ValidSHA256(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// VerifyReader wraps rc, the content of key, so that reading it checks the
// content against want (lowercase hex SHA-256) and size: the read that
// reaches the end returns an error wrapping ErrChecksum instead of io.EOF
// when they differ, and so does a read past size bytes. When rc itself
// fails after delivering exactly size bytes (an SDK's own checksum check,
// say) and the content differs, the error wraps both ErrChecksum and rc's
// error. Store implementations use it for Get.
func VerifyReader(rc io.ReadCloser, key, want string, size int64) io.ReadCloser {
	return &verifyReader{rc: rc, key: key, want: want, size: size, h: sha256.New()}
}

type verifyReader struct {
	rc   io.ReadCloser
	key  string
	want string
	size int64
	n    int64
	h    hash.Hash
	err  error // sticky result once the end was reached
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.err = fmt.Errorf("read %s: %w: more than the recorded %d bytes", v.key, ErrChecksum, v.size)
		return n, v.err
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		v.err = v.check(nil)
		return n, v.err
	default:
		if v.size >= 0 && v.n == v.size {
			if cerr := v.check(err); cerr != io.EOF {
				v.err = cerr
				return n, v.err
			}
		}
		v.err = err
		return n, err
	}
}

func (v *verifyReader) check(cause error) error {
	if v.size >= 0 && v.n != v.size {
		return errors.Join(fmt.Errorf("read %s: %w: got %d bytes, recorded %d", v.key, ErrChecksum, v.n, v.size), cause)
	}
	got := hex.EncodeToString(v.h.Sum(nil))
	if got != v.want {
		return errors.Join(fmt.Errorf("read %s: %w: content has sha256 %s, recorded %s", v.key, ErrChecksum, got, v.want), cause)
	}
	if cause != nil {
		// The content matched; rc's error stands on its own.
		return cause
	}
	return io.EOF
}

func (v *verifyReader) Close() error { return v.rc.Close() }
