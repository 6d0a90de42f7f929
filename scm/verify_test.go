package scm

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
)

func TestHMACCheck(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"ref":"refs/heads/main"}`)
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	good := hex.EncodeToString(m.Sum(nil))
	tests := []struct {
		name         string
		secret       []byte
		sig          string
		body         []byte
		verify, chck error // Verify's error, then Check's
	}{
		{"authentic", secret, good, body, nil, nil},
		{"body altered", secret, good, append(body, ' '), nil, ErrSignature},
		{"other secret", []byte("other"), good, body, nil, ErrSignature},
		{"no secret", nil, good, body, ErrSignature, nil},
		{"not hex", secret, "zz" + good[2:], body, ErrSignature, nil},
		{"short digest", secret, "00", body, ErrSignature, nil},
		{"missing", secret, "", body, ErrSignature, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := HMACCheck(sha256.New, tc.secret, tc.sig)
			if !errors.Is(err, tc.verify) || tc.verify == nil && err != nil {
				t.Fatalf("HMACCheck: got %v, want %v", err, tc.verify)
			}
			if err != nil {
				return
			}
			// Written in pieces, as a body streams in.
			c.Write(tc.body[:5])
			c.Write(tc.body[5:])
			if err := c.Check(); !errors.Is(err, tc.chck) || tc.chck == nil && err != nil {
				t.Errorf("Check: got %v, want %v", err, tc.chck)
			}
		})
	}
}
