package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProxyRefusesOpenControl: a control API reachable beyond loopback
// needs a token, and a short token is refused.
func TestProxyRefusesOpenControl(t *testing.T) {
	short := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(short, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"proxy", "--listen", "127.0.0.1:0", "--control", "0.0.0.0:0"}, "is not loopback: give --token-file"},
		{[]string{"proxy", "--listen", "127.0.0.1:0", "--control", "[::]:0"}, "is not loopback"},
		{[]string{"proxy", "--listen", "127.0.0.1:0", "--token-file", short}, "shorter than 16 characters"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, nil, &out, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("runnel %v: exit %d, stderr %q; want %d and %q", tt.args, code, errb.String(), exitUsage, tt.want)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1:9000": true, "localhost:1": true, "[::1]:2": true, ":9000": false, "10.1.2.3:4": false, "nohost": false} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
