package ecs_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"
)

// motoURL is the base URL of the moto_server started by TestMain, "" when
// it could not be started (motoErr says why).
var motoURL, motoErr = "", error(nil)

func TestMain(m *testing.M) {
	stop := startMoto()
	code := m.Run()
	stop()
	os.Exit(code)
}

func startMoto() (stop func()) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		if _, serr := os.Stat("/root/.pyenv/shims/moto_server"); serr == nil {
			bin, err = "/root/.pyenv/shims/moto_server", nil
		}
	}
	if err != nil {
		motoErr = fmt.Errorf("moto_server not found: %w", err)
		return func() {}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		motoErr = err
		return func() {}
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	if os.Getenv("MOTO_LOG") != "" {
		cmd.Stderr = os.Stderr // moto's request log and tracebacks
	}
	if err := cmd.Start(); err != nil {
		motoErr = fmt.Errorf("start moto_server: %w", err)
		return func() {}
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			motoURL = url
			return stop
		}
		time.Sleep(100 * time.Millisecond)
	}
	motoErr = fmt.Errorf("moto_server on %s did not answer within 30 s", url)
	return stop
}

// moto returns the moto_server URL after resetting its state; it fails
// the test when CI is set and moto_server is missing, else skips.
func moto(t *testing.T) string {
	t.Helper()
	if motoURL == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("moto_server: %v", motoErr)
		}
		t.Skipf("moto_server: %v", motoErr)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, motoURL+"/moto-api/reset", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("reset moto: %v", err)
	}
	resp.Body.Close()
	return motoURL
}
