package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/runner/secretbox"
	"github.com/runnel-ci/runnel/runner/store"
)

// TestSecretRotateKey: `runnel secret rotate-key` seals every value under
// a new key, drops the old one, and the values still read back.
func TestSecretRotateKey(t *testing.T) {
	data := t.TempDir()
	ctx := context.Background()
	box, err := secretbox.Load(data, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	dsn := filepath.Join(data, "runnel.db")
	st, err := store.Open(ctx, dsn, store.WithLogger(slog.New(slog.DiscardHandler)), store.WithSealer(box))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := st.CreateRepo(ctx, store.Repo{Name: "acme/web", Forge: "github", WebhookSecret: "whsec-1234"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutSecret(ctx, store.Secret{RepoID: repo.ID, Name: "DEPLOY_TOKEN"}, "token-value-1"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	oldKey, _ := os.ReadFile(filepath.Join(data, secretbox.KeyFile))

	r := runnel(t, data, "secret", "rotate-key", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "2 values sealed again") {
		t.Fatalf("rotate-key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	newKey, _ := os.ReadFile(filepath.Join(data, secretbox.KeyFile))
	if string(newKey) == string(oldKey) || strings.Count(string(newKey), "\n") != 1 {
		t.Fatalf("key file after rotation: %q (before %q), want one new key", newKey, oldKey)
	}
	box2, err := secretbox.Load(data, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(ctx, dsn, store.WithLogger(slog.New(slog.DiscardHandler)), store.WithSealer(box2))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vals, err := st.SecretValues(ctx, repo.ID)
	if err != nil || vals["DEPLOY_TOKEN"].Value != "token-value-1" {
		t.Fatalf("after rotation: %v, %v", vals, err)
	}
	got, err := st.RepoByID(ctx, repo.ID)
	if err != nil || got.WebhookSecret != "whsec-1234" {
		t.Fatalf("after rotation: %+v, %v", got, err)
	}
}

func TestReadSecretValue(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"token-1\n", "token-1"}, {"token-1\r\n", "token-1"}, {"token-1", "token-1"}, {"a\nb\n\n", "a\nb\n"},
	} {
		got, err := readSecretValue(strings.NewReader(c.in), "")
		if err != nil || got != c.want {
			t.Errorf("readSecretValue(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	f := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(f, []byte("-----BEGIN KEY-----\nabc\n-----END KEY-----\n"), 0o600)
	if got, _ := readSecretValue(strings.NewReader("ignored"), f); !strings.HasSuffix(got, "KEY-----\n") {
		t.Errorf("from a file the value is kept byte for byte, got %q", got)
	}
}
