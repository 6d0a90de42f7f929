package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/runnel-ci/runnel/runner/secretbox"
)

func testBox(t *testing.T) *secretbox.Box {
	t.Helper()
	b, err := secretbox.Load(t.TempDir(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawColumn reads a column as the database holds it.
func rawColumn(t *testing.T, dsn, q string, args ...any) string {
	t.Helper()
	s := openTest(t, dsn)
	var v string
	if err := s.r.QueryRowContext(ctxT(t), s.rebind(q), args...).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSecrets(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := ctxT(t)
		plain := openTest(t, dsn)
		repo := mustRepo(t, plain, "acme/web")
		if _, err := plain.PutSecret(ctx, Secret{RepoID: repo.ID, Name: "X"}, "value-1"); !errors.Is(err, ErrNoSealer) {
			t.Fatalf("PutSecret without a sealer: %v, want ErrNoSealer", err)
		}
		s := openTest(t, dsn, WithSealer(testBox(t)))
		for _, c := range []struct {
			repo  int64
			name  string
			value string
			sec   Secret
		}{
			{repo.ID, "DEPLOY_TOKEN", "repo-token-1", Secret{Branches: []string{"main"}, Events: []string{"push"}}},
			{0, "DEPLOY_TOKEN", "global-token", Secret{}},
			{0, "GLOBAL_ONLY", "global-only-1", Secret{Environments: []string{"prod"}}},
		} {
			c.sec.RepoID, c.sec.Name, c.sec.UpdatedBy = c.repo, c.name, "alice"
			created, err := s.PutSecret(ctx, c.sec, c.value)
			if err != nil || !created {
				t.Fatalf("PutSecret(%d, %s) = %v, %v", c.repo, c.name, created, err)
			}
		}
		if created, err := s.PutSecret(ctx, Secret{RepoID: repo.ID, Name: "DEPLOY_TOKEN", Branches: []string{"main"}}, "repo-token-2"); err != nil || created {
			t.Fatalf("replace: %v, %v", created, err)
		}
		raw := rawColumn(t, dsn, `SELECT value FROM secrets WHERE repo_id = ? AND name = ?`, repo.ID, "DEPLOY_TOKEN")
		if strings.Contains(raw, "repo-token") || !secretbox.Sealed(raw) {
			t.Errorf("stored value %q is not sealed", raw)
		}
		list, err := s.Secrets(ctx, repo.ID)
		if err != nil || len(list) != 1 || list[0].Name != "DEPLOY_TOKEN" || list[0].Branches[0] != "main" || len(list[0].Events) != 0 {
			t.Fatalf("Secrets = %+v, %v", list, err)
		}
		vals, err := s.SecretValues(ctx, repo.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := vals["DEPLOY_TOKEN"].Value; got != "repo-token-2" {
			t.Errorf("DEPLOY_TOKEN = %q, want the repo's own repo-token-2", got)
		}
		if got := vals["GLOBAL_ONLY"]; got == nil || got.Value != "global-only-1" || got.Environments[0] != "prod" {
			t.Errorf("GLOBAL_ONLY = %+v", got)
		}
		names, _ := s.SecretNames(ctx, repo.ID)
		if !names["DEPLOY_TOKEN"] || !names["GLOBAL_ONLY"] || len(names) != 2 {
			t.Errorf("SecretNames = %v", names)
		}
		if err := s.DeleteSecret(ctx, repo.ID, "DEPLOY_TOKEN"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSecret(ctx, repo.ID, "DEPLOY_TOKEN"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		vals, _ = s.SecretValues(ctx, repo.ID)
		if got := vals["DEPLOY_TOKEN"].Value; got != "global-token" {
			t.Errorf("after delete DEPLOY_TOKEN = %q, want the global one", got)
		}
		// A repository's secrets go with it.
		s.PutSecret(ctx, Secret{RepoID: repo.ID, Name: "GONE"}, "value-gone")
		if err := s.DeleteRepo(ctx, repo.ID); err != nil {
			t.Fatal(err)
		}
		if list, _ := s.Secrets(ctx, repo.ID); len(list) != 0 {
			t.Errorf("secrets of a deleted repo: %+v", list)
		}
	})
}

// TestRepoCredentialsSealed: webhook secrets and status tokens kept
// before sealing was on are sealed when a store with a Sealer opens, read
// back in the clear, and re-sealed by a key rotation.
func TestRepoCredentialsSealed(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := ctxT(t)
		old := openTest(t, dsn)
		r, err := old.CreateRepo(ctx, Repo{Name: "acme/api", Forge: "github", WebhookSecret: "whsec-plain-1", StatusToken: "ghp_token_1"})
		if err != nil {
			t.Fatal(err)
		}
		if got := rawColumn(t, dsn, `SELECT webhook_secret FROM repos WHERE id = ?`, r.ID); got != "whsec-plain-1" {
			t.Fatalf("without a sealer the secret is kept as given, got %q", got)
		}
		box := testBox(t)
		s := openTest(t, dsn, WithSealer(box))
		for _, col := range []string{"webhook_secret", "status_token"} {
			if got := rawColumn(t, dsn, `SELECT `+col+` FROM repos WHERE id = ?`, r.ID); !secretbox.Sealed(got) || strings.Contains(got, "plain") {
				t.Errorf("%s after Open with a sealer: %q, want sealed", col, got)
			}
		}
		got, err := s.RepoByID(ctx, r.ID)
		if err != nil || got.WebhookSecret != "whsec-plain-1" || got.StatusToken != "ghp_token_1" {
			t.Fatalf("RepoByID = %+v, %v", got, err)
		}
		got.WebhookSecret = "whsec-new-2"
		if err := s.UpdateRepo(ctx, *got); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutSecret(ctx, Secret{RepoID: r.ID, Name: "K"}, "value-k"); err != nil {
			t.Fatal(err)
		}
		// Rotation: every value is sealed again under the new key.
		before := box.KeyID()
		if err := box.BeginRotation(); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Reseal(ctx); err != nil || n != 2 {
			t.Fatalf("Reseal = %d, %v; want 2 (one repo, one secret)", n, err)
		}
		if err := box.EndRotation(); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{`SELECT webhook_secret FROM repos`, `SELECT status_token FROM repos`, `SELECT value FROM secrets`} {
			if v := rawColumn(t, dsn, q); secretbox.SealedBy(v) == before {
				t.Errorf("%s: still sealed by the old key", q)
			}
		}
		got, err = s.RepoByID(ctx, r.ID)
		if err != nil || got.WebhookSecret != "whsec-new-2" {
			t.Fatalf("after rotation RepoByID = %+v, %v", got, err)
		}
		vals, err := s.SecretValues(ctx, r.ID)
		if err != nil || vals["K"].Value != "value-k" {
			t.Fatalf("after rotation SecretValues = %v, %v", vals, err)
		}
		// A store without the key cannot read sealed credentials.
		if _, err := old.RepoByID(ctx, r.ID); !errors.Is(err, ErrNoSealer) {
			t.Errorf("RepoByID without a sealer: %v, want ErrNoSealer", err)
		}
	})
}
