package secretbox

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func TestLoadMakesPrivateKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	b, err := Load(dir, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode %v, want 0600", got)
	}
	sealed, _ := b.Seal([]byte("hunter2hunter2"), "secret:1:X")
	if strings.Contains(sealed, "hunter2") || !Sealed(sealed) {
		t.Fatalf("sealed value %q", sealed)
	}
	// A second load (a restart) opens what the first sealed.
	b2, err := Load(dir, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := b2.Open(sealed, "secret:1:X")
	if err != nil || string(plain) != "hunter2hunter2" {
		t.Fatalf("Open = %q, %v", plain, err)
	}
	if _, err := b2.Open(sealed, "secret:2:X"); err == nil {
		t.Error("Open with another aad succeeded, want an error")
	}
}

func TestLoadRefusesReadableKeyFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir, noEnv); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := Load(dir, noEnv); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("got %v, want an error asking for chmod 600", err)
	}
}

func TestEnvKey(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("a", 32)))
	k2 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("b", 32)))
	env := map[string]string{EnvKey: k1}
	dir := t.TempDir()
	b, err := Load(dir, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
		t.Error("a key file was made although the key came from the environment")
	}
	old, _ := b.Seal([]byte("value-1"), "a")
	if err := b.BeginRotation(); err == nil {
		t.Error("BeginRotation with an environment key succeeded")
	}
	env = map[string]string{EnvKey: k2, EnvPreviousKey: k1}
	b2, err := Load(dir, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if p, err := b2.Open(old, "a"); err != nil || string(p) != "value-1" {
		t.Fatalf("old value under the previous key: %q, %v", p, err)
	}
	if n, _ := b2.Seal([]byte("x"), "a"); SealedBy(n) == SealedBy(old) {
		t.Error("new values are sealed with the previous key")
	}
	env = map[string]string{EnvKey: "short"}
	if _, err := Load(dir, func(k string) string { return env[k] }); err == nil {
		t.Error("a short key was accepted")
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	b, err := Load(dir, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := b.Seal([]byte("value-1"), "a")
	// Another process (a running server) holds the old key only.
	server, err := Load(dir, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.BeginRotation(); err != nil {
		t.Fatal(err)
	}
	fresh, _ := b.Seal([]byte("value-1"), "a")
	if SealedBy(fresh) == SealedBy(old) {
		t.Fatal("the rotation kept sealing with the old key")
	}
	if p, err := b.Open(old, "a"); err != nil || string(p) != "value-1" {
		t.Fatalf("during rotation, old value: %q, %v", p, err)
	}
	if err := b.EndRotation(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(old, "a"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("after rotation, old value: %v, want ErrUnknownKey", err)
	}
	// The server reloads the file when it meets the new key id.
	if p, err := server.Open(fresh, "a"); err != nil || string(p) != "value-1" {
		t.Fatalf("server opening a value of the new key: %q, %v", p, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, KeyFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("rotated key file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	b, _ := New([]byte(strings.Repeat("k", 32)))
	s, _ := b.Seal([]byte("value-1"), "a")
	bad := s[:len(s)-2] + "AA"
	if bad == s {
		bad = s[:len(s)-2] + "BB"
	}
	for _, in := range []string{bad, "plain", "sb1:nocolon", "sb1:" + SealedBy(s) + ":!!"} {
		if _, err := b.Open(in, "a"); err == nil {
			t.Errorf("Open(%q) succeeded", in)
		}
	}
}
