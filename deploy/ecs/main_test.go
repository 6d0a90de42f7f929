package ecs_test

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/runnel-ci/runnel/internal/mototest"
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
	s, err := mototest.Start()
	if err != nil {
		motoErr = err
		return func() {}
	}
	motoURL = s.URL
	return s.Stop
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
