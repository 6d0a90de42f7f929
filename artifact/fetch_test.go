package artifact_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/artifact"
)

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// server serves body at /file and counts requests; release, when not nil,
// holds each response until it is closed.
func server(t *testing.T, body []byte, release chan struct{}) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if release != nil {
			<-release
		}
		if r.URL.Path != "/file" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestFetchCaches(t *testing.T) {
	body := []byte("a tool binary")
	srv, n := server(t, body, nil)
	dir := t.TempDir()
	f := &artifact.Fetcher{Dir: dir}
	sum := hexSum(body)
	for i := range 2 {
		p, err := f.Fetch(t.Context(), srv.URL+"/file", sum)
		if err != nil {
			t.Fatalf("Fetch %d: %v", i, err)
		}
		if want := filepath.Join(dir, "sha256", sum); p != want {
			t.Errorf("Fetch %d path = %s, want %s", i, p, want)
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != string(body) {
			t.Errorf("Fetch %d content = %q, %v; want %q", i, got, err, body)
		}
	}
	if got := n.Load(); got != 1 {
		t.Errorf("requests = %d, want 1 (second fetch from cache)", got)
	}
	// Same checksum from another URL: still no download.
	if _, err := (&artifact.Fetcher{Dir: dir}).Fetch(t.Context(), srv.URL+"/elsewhere", sum); err != nil {
		t.Fatalf("Fetch from second URL: %v", err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("requests after second URL = %d, want 1", got)
	}
}

func TestFetchWrongChecksum(t *testing.T) {
	srv, _ := server(t, []byte("tampered"), nil)
	dir := t.TempDir()
	f := &artifact.Fetcher{Dir: dir}
	sum := hexSum([]byte("expected"))
	_, err := f.Fetch(t.Context(), srv.URL+"/file", sum)
	if !errors.Is(err, artifact.ErrChecksum) {
		t.Fatalf("Fetch: got %v, want ErrChecksum", err)
	}
	if f.Cached(sum) {
		t.Error("Cached after failed fetch = true, want false")
	}
	for _, sub := range []string{"sha256", "tmp"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		if len(ents) != 0 {
			t.Errorf("%s holds %d entries after failed fetch, want 0", sub, len(ents))
		}
	}
}

func TestFetchErrors(t *testing.T) {
	srv, _ := server(t, []byte("x"), nil)
	f := &artifact.Fetcher{Dir: t.TempDir(), MaxBytes: 4}
	for _, tc := range []struct {
		name, url, sum string
		checksum       bool
	}{
		{"bad sum", srv.URL + "/file", "XYZ", true},
		{"uppercase sum", srv.URL + "/file", "A" + hexSum([]byte("x"))[1:], true},
		{"404", srv.URL + "/missing", hexSum([]byte("x")), false},
	} {
		_, err := f.Fetch(t.Context(), tc.url, tc.sum)
		if err == nil || errors.Is(err, artifact.ErrChecksum) != tc.checksum {
			t.Errorf("%s: Fetch error = %v, want error (checksum: %v)", tc.name, err, tc.checksum)
		}
	}
	big, _ := server(t, []byte("more than four bytes"), nil)
	if _, err := f.Fetch(t.Context(), big.URL+"/file", hexSum([]byte("more than four bytes"))); err == nil {
		t.Error("Fetch above MaxBytes: got nil error")
	}
}

func TestFetchConcurrentOnce(t *testing.T) {
	body := []byte("shared download")
	release := make(chan struct{})
	srv, n := server(t, body, release)
	f := &artifact.Fetcher{Dir: t.TempDir()}
	sum := hexSum(body)
	const callers = 8
	var wg sync.WaitGroup
	paths := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { paths[i], errs[i] = f.Fetch(t.Context(), srv.URL+"/file", sum) })
	}
	// Every caller is inside Fetcher.fetch before the one download may
	// finish: none can leave it until then, so all share that download.
	// Their goroutines' stacks are the only sign of it.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for inFetch() < callers {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%d of %d callers in Fetch after 10s", inFetch(), callers)
		}
	}
	close(release)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Errorf("caller %d: %q, %v; want %q", i, paths[i], errs[i], paths[0])
		}
	}
	if got := n.Load(); got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
}

// inFetch counts the goroutines inside artifact.(*Fetcher).fetch.
func inFetch() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "artifact.(*Fetcher).fetch(")
}

// Presigned URLs carry credentials in the query; errors must not repeat it.
func TestFetchRedactsQuery(t *testing.T) {
	f := &artifact.Fetcher{Dir: t.TempDir()}
	secret := "X-Amz-Signature=deadbeefsecret"
	for _, url := range []string{
		"http://127.0.0.1:1/file?" + secret, // connection refused: *url.Error
	} {
		_, err := f.Fetch(t.Context(), url, hexSum([]byte("x")))
		if err == nil {
			t.Fatalf("Fetch(%s): got nil error", url)
		}
		if strings.Contains(err.Error(), "deadbeefsecret") {
			t.Errorf("error %q repeats the URL's query", err)
		}
	}
	srv, _ := server(t, []byte("x"), nil)
	_, err := f.Fetch(t.Context(), srv.URL+"/missing?"+secret, hexSum([]byte("x")))
	if err == nil || strings.Contains(err.Error(), "deadbeefsecret") {
		t.Errorf("Fetch of 404 with secret query: error %v, want an error without the query", err)
	}
}

func TestFetcherAdd(t *testing.T) {
	body := []byte("tool bytes")
	sum := hexSum(body)
	f := &artifact.Fetcher{Dir: t.TempDir()}
	if _, err := f.Add(t.Context(), sum, strings.NewReader("other bytes")); !errors.Is(err, artifact.ErrChecksum) {
		t.Fatalf("Add with the wrong content: err %v, want ErrChecksum", err)
	}
	if f.Cached(sum) {
		t.Fatal("a refused Add left the file cached")
	}
	p, err := f.Add(t.Context(), sum, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, body) || p != f.Path(sum) {
		t.Fatalf("Add stored %q at %s (%v), want %q at %s", got, p, err, body, f.Path(sum))
	}
	// Now cached: Fetch needs no network (the URL is unusable).
	if got, err := f.Fetch(t.Context(), "http://127.0.0.1:1/none", sum); err != nil || got != p {
		t.Fatalf("Fetch after Add = %s, %v; want the cached %s", got, err, p)
	}
}
