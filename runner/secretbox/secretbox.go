package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// KeyFile is the name of the key file in the data directory.
const KeyFile = "secret.key"

// Environment variables that hold keys instead of the key file: the
// current key, and during a rotation the one it replaces (both base64 of
// 32 bytes).
const (
	EnvKey         = "RUNNEL_SECRET_KEY"
	EnvPreviousKey = "RUNNEL_SECRET_KEY_PREVIOUS"
)

// prefix starts every sealed value: "sb1:" key id ":" base64(nonce|ciphertext).
const prefix = "sb1:"

// ErrUnknownKey reports a value sealed under a key the box does not hold.
var ErrUnknownKey = errors.New("sealed with an unknown key")

type key struct {
	id   string // 8 hex digits of SHA-256(key)
	aead cipher.AEAD
	raw  []byte
}

func newKey(raw []byte) (key, error) {
	if len(raw) != 32 {
		return key{}, fmt.Errorf("key is %d bytes, want 32", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	sum := sha256.Sum256(raw)
	return key{id: hex.EncodeToString(sum[:4]), aead: aead, raw: raw}, nil
}

// Box seals and opens values. It is safe for concurrent use.
type Box struct {
	mu   sync.RWMutex
	keys []key // keys[0] seals; all open
	path string
}

// New returns a Box holding the given 32-byte keys; the first seals.
func New(raws ...[]byte) (*Box, error) {
	if len(raws) == 0 {
		return nil, errors.New("secretbox: no key")
	}
	b := &Box{}
	for _, r := range raws {
		k, err := newKey(r)
		if err != nil {
			return nil, fmt.Errorf("secretbox: %w", err)
		}
		b.keys = append(b.keys, k)
	}
	return b, nil
}

// Load returns the box of a data directory: the keys of getenv(EnvKey)
// (and EnvPreviousKey) when set, else those of dir/KeyFile, which is made
// with a new random key (mode 0600) when missing.
func Load(dir string, getenv func(string) string) (*Box, error) {
	if v := getenv(EnvKey); v != "" {
		raws := [][]byte{}
		for _, name := range []string{EnvKey, EnvPreviousKey} {
			s := getenv(name)
			if s == "" {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
			if err != nil || len(raw) != 32 {
				return nil, fmt.Errorf("secretbox: %s must be base64 of 32 bytes (make one with: head -c32 /dev/urandom | base64)", name)
			}
			raws = append(raws, raw)
		}
		return New(raws...)
	}
	path := filepath.Join(dir, KeyFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := create(dir, path); err != nil {
			return nil, err
		}
	}
	b := &Box{path: path}
	if err := b.reload(); err != nil {
		return nil, err
	}
	return b, nil
}

// create writes a new key file atomically: written aside, then linked
// into place, which fails harmlessly when another process was first.
func create(dir, path string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("secretbox: %w", err)
	}
	tmp, err := writeTemp(dir, [][]byte{randomKey()})
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("secretbox: %w", err)
	}
	return nil
}

func randomKey() []byte {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // never fails (it panics without randomness)
	return raw
}

// writeTemp writes keys (one base64 line each) to a new 0600 file in dir.
func writeTemp(dir string, raws [][]byte) (string, error) {
	f, err := os.CreateTemp(dir, KeyFile+".*")
	if err != nil {
		return "", fmt.Errorf("secretbox: %w", err)
	}
	var sb strings.Builder
	for _, r := range raws {
		sb.WriteString(base64.StdEncoding.EncodeToString(r) + "\n")
	}
	_, err = f.WriteString(sb.String())
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("secretbox: write %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// reload reads the key file again (a rotation in another process may have
// changed it).
func (b *Box) reload() error {
	if b.path == "" {
		return nil
	}
	fi, err := os.Stat(b.path)
	if err != nil {
		return fmt.Errorf("secretbox: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secretbox: %s is mode %v; it must be readable by its owner only (chmod 600 %s)", b.path, fi.Mode().Perm(), b.path)
	}
	data, err := os.ReadFile(b.path)
	if err != nil {
		return fmt.Errorf("secretbox: %w", err)
	}
	var keys []key
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(line)
		if err == nil {
			var k key
			if k, err = newKey(raw); err == nil {
				keys = append(keys, k)
				continue
			}
		}
		return fmt.Errorf("secretbox: %s:%d: not a key (base64 of 32 bytes)", b.path, i+1)
	}
	if len(keys) == 0 {
		return fmt.Errorf("secretbox: %s holds no key", b.path)
	}
	b.mu.Lock()
	b.keys = keys
	b.mu.Unlock()
	return nil
}

// KeyID names the key that seals now.
func (b *Box) KeyID() string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.keys[0].id
}

// Seal encrypts plain under the current key. aad is where the value
// belongs (e.g. "secret:12:DEPLOY_TOKEN"): Open with another aad fails,
// so a sealed value cannot be moved to another place in the database.
func (b *Box) Seal(plain []byte, aad string) (string, error) {
	b.mu.RLock()
	k := b.keys[0]
	b.mu.RUnlock()
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plain)+k.aead.Overhead())
	_, _ = rand.Read(nonce)
	ct := k.aead.Seal(nonce, nonce, plain, []byte(aad))
	return prefix + k.id + ":" + base64.RawStdEncoding.EncodeToString(ct), nil
}

// Sealed reports whether s has the form of a sealed value.
func Sealed(s string) bool { return strings.HasPrefix(s, prefix) }

// SealedBy returns the key id of a sealed value.
func SealedBy(s string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(s, prefix), ":")
	return id
}

// Open decrypts a value Seal made with the same aad.
func (b *Box) Open(sealed, aad string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return nil, errors.New("secretbox: not a sealed value")
	}
	id, data, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, errors.New("secretbox: malformed sealed value")
	}
	k, found := b.find(id)
	if !found {
		// Another process may have rotated the key file.
		if err := b.reload(); err != nil {
			return nil, err
		}
		if k, found = b.find(id); !found {
			return nil, fmt.Errorf("secretbox: key %s: %w", id, ErrUnknownKey)
		}
	}
	ct, err := base64.RawStdEncoding.DecodeString(data)
	if err != nil || len(ct) < k.aead.NonceSize() {
		return nil, errors.New("secretbox: malformed sealed value")
	}
	plain, err := k.aead.Open(nil, ct[:k.aead.NonceSize()], ct[k.aead.NonceSize():], []byte(aad))
	if err != nil {
		return nil, fmt.Errorf("secretbox: open value for %s: %w", aad, err)
	}
	return plain, nil
}

func (b *Box) find(id string) (key, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, k := range b.keys {
		if k.id == id {
			return k, true
		}
	}
	return key{}, false
}

// FromFile reports whether the box's keys come from a key file (which
// Rotate can change) rather than the environment.
func (b *Box) FromFile() bool { return b.path != "" }

// BeginRotation makes a new key the sealing one and keeps the old keys
// for opening. With a key file, the file is replaced (atomically) by one
// holding the new key first; call EndRotation once every value is sealed
// again. With keys from the environment it fails: rotate those by setting
// RUNNEL_SECRET_KEY to the new key and RUNNEL_SECRET_KEY_PREVIOUS to the
// old one.
func (b *Box) BeginRotation() error {
	if b.path == "" {
		return errors.New("secretbox: keys come from " + EnvKey + "; set the new key there and the old one in " + EnvPreviousKey)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	raws := [][]byte{randomKey()}
	for _, k := range b.keys {
		raws = append(raws, k.raw)
	}
	if err := b.replaceLocked(raws); err != nil {
		return err
	}
	return nil
}

// EndRotation drops every key but the sealing one (from the key file too).
func (b *Box) EndRotation() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.path == "" {
		b.keys = b.keys[:1]
		return nil
	}
	return b.replaceLocked([][]byte{b.keys[0].raw})
}

func (b *Box) replaceLocked(raws [][]byte) error {
	tmp, err := writeTemp(filepath.Dir(b.path), raws)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, b.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("secretbox: %w", err)
	}
	keys := make([]key, 0, len(raws))
	for _, r := range raws {
		k, err := newKey(r)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	b.keys = keys
	return nil
}
