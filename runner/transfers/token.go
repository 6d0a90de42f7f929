package transfers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

var errToken = errors.New("invalid or expired token")

// claims are what a job's token says.
type claims struct {
	Run        int64  `json:"r"`
	Stage      string `json:"s"`
	Attempt    int    `json:"a"`
	CacheWrite bool   `json:"w,omitempty"`
	Expires    int64  `json:"e"` // Unix seconds
}

type signer struct{ key []byte }

func (s signer) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

// token encodes and signs c: "<claims>.<signature>", URL-safe.
func (s signer) token(c claims) string {
	body, _ := json.Marshal(c) // a struct of plain fields always encodes
	enc := b64.EncodeToString(body)
	return enc + "." + b64.EncodeToString(s.mac("job", enc))
}

// parse checks a token's signature and expiry and returns its claims.
func (s signer) parse(tok string, now time.Time) (claims, error) {
	enc, sig, ok := strings.Cut(tok, ".")
	if !ok || len(tok) > 2048 {
		return claims{}, errToken
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("job", enc)) {
		return claims{}, errToken
	}
	body, err := b64.DecodeString(enc)
	if err != nil {
		return claims{}, errToken
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil || now.Unix() > c.Expires {
		return claims{}, errToken
	}
	return c, nil
}

// blob is what a signed blob URL allows: one method on one key, for
// content of that size and SHA-256, until exp.
type blob struct {
	method string
	key    string
	size   int64
	sha256 string
	exp    int64
}

func (s signer) blobSig(b blob) string {
	return b64.EncodeToString(s.mac("blob", b.method, b.key, strconv.FormatInt(b.size, 10), b.sha256, strconv.FormatInt(b.exp, 10)))
}

func (s signer) checkBlob(b blob, sig string, now time.Time) error {
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("blob", b.method, b.key, strconv.FormatInt(b.size, 10), b.sha256, strconv.FormatInt(b.exp, 10))) {
		return errToken
	}
	if now.Unix() > b.exp {
		return fmt.Errorf("%w: expired", errToken)
	}
	return nil
}
