package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/scm"
)

// badSignature is a well-formed X-Hub-Signature-256 that signs nothing
// sent here: a body with it must be read before it is refused.
var badSignature = "sha256=" + strings.Repeat("0", 64)

// TestHookSpool: a forge hook's body longer than memBody is verified as
// it streams to an unlinked file, so an unverified body never takes more
// of the memory budget than memBody; only a verified one is loaded, and
// every budget is whole again afterwards, with no file left behind.
func TestHookSpool(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 2<<20)
	tests := []struct {
		name        string
		mem, spool  int64 // budgets
		limit       int64
		secret      string // what the body is signed with ("s" is right)
		wait        time.Duration
		want        error
		wantLoaded  bool
		lengthKnown bool
	}{
		{"unverified, memory for its start only", memBody, 64 << 20, scm.MaxBodySize, "wrong", time.Second, scm.ErrSignature, false, true},
		// Growing by doubling holds the old buffer while it copies.
		{"unverified, length unknown", 2 * memBody, 64 << 20, scm.MaxBodySize, "wrong", time.Second, scm.ErrSignature, false, false},
		{"authentic", 4 << 20, 64 << 20, scm.MaxBodySize, "s", time.Second, nil, true, true},
		{"authentic, length unknown", 4 << 20, 64 << 20, scm.MaxBodySize, "s", time.Second, nil, true, false},
		{"authentic, no memory to load it", memBody, 64 << 20, scm.MaxBodySize, "s", 50 * time.Millisecond, errBusy, false, true},
		{"over the limit", 4 << 20, 64 << 20, 1 << 20, "s", time.Second, scm.ErrTooLarge, false, false},
		{"announced over the limit", 4 << 20, 64 << 20, 1 << 20, "s", time.Second, scm.ErrTooLarge, false, true},
		{"spool budget spent", 4 << 20, 1 << 20, scm.MaxBodySize, "s", time.Second, errBusy, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mem, disk := semaphore.NewWeighted(tc.mem), semaphore.NewWeighted(tc.spool)
			sp := &hookSpool{dir: dir, budget: disk}
			length := int64(-1)
			if tc.lengthKnown {
				length = int64(len(body))
			}
			// In pieces, as a client sends it.
			b := newHookBody(mem, iotest.HalfReader(bytes.NewReader(body)), length)
			chk, err := scm.HMACCheck(sha256.New, []byte("s"), strings.TrimPrefix(sign(tc.secret, body), "sha256="))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.wait)
			defer cancel()
			if err := b.prefix(memBody); err != nil {
				t.Fatal(err)
			}
			err = sp.verify(ctx, b, chk, tc.limit)
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("verify: got %v, want %v", err, tc.want)
			}
			if loaded := bytes.Equal(b.bytes(), body); loaded != tc.wantLoaded {
				t.Errorf("body loaded: got %v (%d bytes), want %v", loaded, len(b.bytes()), tc.wantLoaded)
			}
			b.release()
			if !mem.TryAcquire(tc.mem) || !disk.TryAcquire(tc.spool) {
				t.Errorf("a budget is not whole after release")
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("spool dir holds %d files, want none", len(left))
			}
		})
	}
}

// TestHookSpoolHTTP (issue 11, item 4): through the server, a long body
// that is not signed by the repository's secret is read, verified and
// refused (401) with a memory budget smaller than it, where reading it
// into memory first was refused as 503; an authentic long push is
// accepted.
func TestHookSpoolHTTP(t *testing.T) {
	spool := t.TempDir()
	e := newEnvWith(t, func(c *Config) { c.HookBodyBudget = 3 << 20; c.HookSpoolDir = spool }, nil)
	if _, err := e.st.CreateRepo(context.Background(), store.Repo{Name: "acme/app", Forge: "github", CloneURL: e.bare, WebhookSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	sha := e.push(onePipeline)
	long := []byte(fmt.Sprintf(`{"pad":%q,"ref":"refs/heads/main","after":%q,"repository":{"full_name":"acme/app"}}`,
		strings.Repeat("x", 4<<20), sha))
	hdr := githubHeaders("long-forged", "s", long)
	hdr["X-Hub-Signature-256"] = badSignature
	if code, b := e.do("POST", "/hooks/github/acme/app", long, hdr); code != 401 {
		t.Errorf("4 MiB body, wrong signature, 3 MiB memory budget: got %d %s, want 401", code, b)
	}
	push := []byte(fmt.Sprintf(`{"pad":%q,"ref":"refs/heads/main","after":%q,"repository":{"full_name":"acme/app"}}`,
		strings.Repeat("x", 2<<20), sha))
	if code, b := e.do("POST", "/hooks/github/acme/app", push, githubHeaders("long", "s", push)); code != 202 {
		t.Errorf("2 MiB authentic push: got %d %s, want 202", code, b)
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Errorf("spool dir holds %d files, want none", len(left))
	}
}
