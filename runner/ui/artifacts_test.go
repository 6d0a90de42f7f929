package ui

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/runner/store"
)

// TestRunPageArtifacts: a run's artifacts are listed on its page with
// size and digest, and their link downloads the archive with the session
// (a login first without one).
func TestRunPageArtifacts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	body := strings.Repeat("tar bytes ", 500)
	sum := sha256.Sum256([]byte(body))
	hexSum := hex.EncodeToString(sum[:])
	key := "runs/" + strconv.FormatInt(e.run.ID, 10) + "/build/1.tar"
	if err := e.store.ReserveObject(ctx, store.TransferObject{Kind: "artifact", Scope: "run:" + strconv.FormatInt(e.run.ID, 10),
		Name: "build", Key: key, Size: int64(len(body)), SHA256: hexSum, RunID: e.run.ID, Attempt: 1, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.objects.Put(ctx, key, strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CommitObject(ctx, key, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}

	c := e.client()
	link := runPath(e.run.ID) + "/artifacts/build"
	if code, _, hdr := e.get(c, link); code != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), "/login") {
		t.Errorf("download without a session: %d to %q, want a redirect to the login", code, hdr.Get("Location"))
	}
	e.login(c, e.token)
	code, page, _ := e.get(c, runPath(e.run.ID))
	if code != http.StatusOK {
		t.Fatalf("run page: %d", code)
	}
	for _, want := range []string{`id="artifacts"`, `href="` + link + `"`, "build.tar", "4.9 KiB", hexSum[:8]} {
		if !strings.Contains(page, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	code, got, hdr := e.get(c, link)
	if code != http.StatusOK || got != body || hdr.Get("X-Runnel-Sha256") != hexSum {
		t.Errorf("download: %d, %d bytes, sha %q; want the archive", code, len(got), hdr.Get("X-Runnel-Sha256"))
	}
}
