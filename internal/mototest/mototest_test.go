package mototest

import (
	"net"
	"net/http"
	"os"
	"testing"
)

// TestPortTakenMeanwhile: a port another process holds is not mistaken
// for moto's: Start's first try there fails and the server it returns
// is its own, on another port.
func TestPortTakenMeanwhile(t *testing.T) {
	bin, err := Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	// Another server answers on a port: moto told to use it must fail.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	port := l.Addr().(*net.TCPAddr).Port
	if s, err := startOn(bin, port); err == nil {
		s.Stop()
		t.Fatalf("moto_server on taken port %d reported as started", port)
	}

	s := Need(t)
	resp, err := http.Get(s.URL + "/moto-api/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("moto-api answered %s", resp.Status)
	}
}
