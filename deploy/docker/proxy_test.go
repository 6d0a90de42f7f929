package docker_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/runnel-ci/runnel/deploy/docker"
)

func upstream(t *testing.T, name string) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

func TestProxyWeights(t *testing.T) {
	blue, green := upstream(t, "blue"), upstream(t, "green")
	p := docker.NewProxy(nil)
	front := httptest.NewServer(p)
	defer front.Close()

	get := func() string {
		resp, err := http.Get(front.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.Status
		}
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "503 Service Unavailable" {
		t.Errorf("without upstreams: got %q, want 503", got)
	}
	tests := []struct {
		blue, green *url.URL
		weight      int
		want        map[string]int // responses of 200 requests
	}{
		{blue, nil, 50, map[string]int{"blue": 200}},
		{blue, green, 0, map[string]int{"blue": 200}},
		{blue, green, 10, map[string]int{"blue": 180, "green": 20}},
		{blue, green, 50, map[string]int{"blue": 100, "green": 100}},
		{blue, green, 100, map[string]int{"green": 200}},
		{nil, green, 10, map[string]int{"green": 200}},
	}
	for _, tt := range tests {
		p.Set(tt.blue, tt.green, tt.weight)
		got := map[string]int{}
		for range 200 {
			got[get()]++
		}
		if len(got) != len(tt.want) || got["blue"] != tt.want["blue"] || got["green"] != tt.want["green"] {
			t.Errorf("weight %d: got %v, want %v", tt.weight, got, tt.want)
		}
	}
	bad, _ := url.Parse("http://127.0.0.1:1")
	p.Set(bad, nil, 0)
	if got := get(); got != "502 Bad Gateway" {
		t.Errorf("dead upstream: got %q, want 502", got)
	}
}

// TestProxyConcurrentSet: routes change while requests are in flight
// (run with -race); every request reaches one of the upstreams.
func TestProxyConcurrentSet(t *testing.T) {
	blue, green := upstream(t, "blue"), upstream(t, "green")
	p := docker.NewProxy(nil)
	p.Set(blue, nil, 0)
	front := httptest.NewServer(p)
	defer front.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for w := 0; ctx.Err() == nil; w = (w + 7) % 101 {
			p.Set(blue, green, w)
		}
	}()
	for range 300 {
		resp, err := http.Get(front.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if s := string(b); s != "blue" && s != "green" {
			t.Errorf("got %q (status %d), want blue or green", s, resp.StatusCode)
		}
	}
	cancel()
	wg.Wait()
}
