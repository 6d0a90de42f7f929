package scm

import (
	"crypto/hmac"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// BodyCheck receives a request's raw body (its Write never fails); Check,
// called after the last byte, returns nil when the body is authentic and
// an error wrapping ErrSignature when it is not.
type BodyCheck interface {
	io.Writer
	Check() error
}

// HMACCheck returns the BodyCheck of sig, the hex-encoded HMAC of the
// body keyed with secret over the hash h; an error wrapping ErrSignature
// when secret is empty or sig is not a hex-encoded digest of h's size.
func HMACCheck(h func() hash.Hash, secret []byte, sig string) (BodyCheck, error) {
	if len(secret) == 0 {
		return nil, fmt.Errorf("no secret configured: %w", ErrSignature)
	}
	mac := hmac.New(h, secret)
	want, err := hex.DecodeString(sig)
	if err != nil || len(want) != mac.Size() {
		return nil, fmt.Errorf("malformed signature: %w", ErrSignature)
	}
	return &hmacCheck{Hash: mac, want: want}, nil
}

type hmacCheck struct {
	hash.Hash
	want []byte
}

func (c *hmacCheck) Check() error {
	if !hmac.Equal(c.Sum(nil), c.want) {
		return fmt.Errorf("signature mismatch: %w", ErrSignature)
	}
	return nil
}

// Authentic is the BodyCheck of a request that its headers authenticate
// (a token): the body is not looked at.
var Authentic BodyCheck = authentic{}

type authentic struct{}

func (authentic) Write(p []byte) (int, error) { return len(p), nil }
func (authentic) Check() error                { return nil }
