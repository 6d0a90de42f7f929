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

// TestRunSecretsFile: `runnel run --secrets-file` gives the stage its
// secrets (variable and file) and masks them, their encodings and values
// registered with ::add-mask:: in the output; an unknown secret and a bad
// file are refused before anything runs, with their positions.
func TestRunSecretsFile(t *testing.T) {
	dir := t.TempDir()
	pipe := `version: 1
stages:
  deploy:
    secrets:
      - TOKEN
      - {name: KEY, file: k.pem, env: KEY_FILE}
    steps:
      - name: leak
        run: |
          echo "token $TOKEN"
          printf '%s' "$TOKEN" | base64
          cat "$KEY_FILE"
          ls "$RUNNEL_SECRETS_DIR"
          echo "::add-mask::derived-$TOKEN-x"
          echo "again derived-$TOKEN-x"
`
	os.WriteFile(filepath.Join(dir, ".pipeline.yml"), []byte(pipe), 0o644)
	secrets := filepath.Join(t.TempDir(), "secrets.env")
	os.WriteFile(secrets, []byte("# local secrets\nTOKEN=supersecret123\nKEY=line-one-of-key\n"), 0o600)

	r := runnel(t, dir, "run", "--backend", "local", "--secrets-file", secrets)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, leak := range []string{"supersecret123", "c3VwZXJzZWNyZXQxMjM", "line-one-of-key"} {
		if strings.Contains(r.stdout+r.stderr, leak) {
			t.Errorf("output shows %q:\n%s", leak, r.stdout)
		}
	}
	for _, want := range []string{"deploy/leak | token ***", "***k.pem", "deploy/leak | ::add-mask::***", "deploy/leak | again ***"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}

	os.WriteFile(secrets, []byte("TOKEN=supersecret123\n"), 0o600)
	r = runnel(t, dir, "run", "--backend", "local", "--secrets-file", secrets)
	if r.code != 1 || !strings.Contains(r.stderr, `.pipeline.yml:6:16: unknown-secret: stage deploy: secret "KEY"`) {
		t.Errorf("unknown secret: exit %d\n%s", r.code, r.stderr)
	}
	os.WriteFile(secrets, []byte("TOKEN=supersecret123\nKEY=short\n"), 0o600)
	r = runnel(t, dir, "run", "--backend", "local", "--secrets-file", secrets)
	if r.code != 2 || !strings.Contains(r.stderr, secrets+":2: secret KEY has 5 bytes") {
		t.Errorf("short value: exit %d\n%s", r.code, r.stderr)
	}
}

func TestParseSecretsFile(t *testing.T) {
	got, err := parseSecretsFile("s.env", []byte("A_1=value=with=equals\r\n\n  # c\nexport B=  spaced  \n"))
	if err != nil || got["A_1"] != "value=with=equals" || got["B"] != "  spaced  " {
		t.Fatalf("got %q, %v", got, err)
	}
	for in, want := range map[string]string{
		"novalue\n":              "s.env:1: want NAME=value",
		"X=abcdefg\nX=abcdefg\n": "s.env:2: secret X is set twice",
		"1X=abcdefg\n":           "s.env:1: secret name",
		"RUNNEL_X=abcdefg\n":     "Runnel's own",
	} {
		if _, err := parseSecretsFile("s.env", []byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parse %q: %v, want %q", in, err, want)
		}
	}
}
