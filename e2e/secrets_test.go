package e2e

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/engine/docker"
)

const (
	secretToken = `tok-Zq8#v@lue/+=&"x<y>`
	secretPEM   = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"
)

// secretsPipeline prints its secrets in every form the masker knows.
// URL and JSON forms are written out by the test (busybox has no tool
// for them); everything else is derived in the container.
func secretsPipeline() string {
	jq, _ := json.Marshal(secretToken)
	return `version: 1
stages:
  leak:
    image: runnel-test/busybox:latest
    secrets:
      - TOKEN
      - name: KEY
        file: key.pem
        env: KEY_FILE
    steps:
      - name: plain
        run: |
          echo "plain $TOKEN"
          echo "env: $(env | grep TOKEN=)"
          ls -l "$KEY_FILE"
      - name: onebyte
        run: |
          i=1
          while [ $i -le ${#TOKEN} ]; do printf '%s' "$TOKEN" | cut -c$i | tr -d '\n'; i=$((i+1)); sleep 0.05; done
          echo
      - name: pem
        run: |
          cat "$KEY_FILE"
          sed -n 2p "$KEY_FILE"
          tr -d '\n' < "$KEY_FILE"; echo
          sed 's/$/\r/' "$KEY_FILE"
      - name: encoded
        run: |
          printf '%s' "$TOKEN" | base64
          printf 'P%s' "$TOKEN" | base64
          printf 'PP%s' "$TOKEN" | base64
          printf '%s' "$TOKEN" | base64 | tr '+/' '-_'
          echo "url ` + url.QueryEscape(secretToken) + `"
          echo 'json ` + string(jq) + `'
      - name: derived
        run: |
          D="drv-$(printf '%s' "$TOKEN" | md5sum | cut -c1-16)"
          echo "::add-mask::$D"
          echo "derived $D"
          printf '%s' "$D" | base64
`
}

// secretForms returns what must never appear in a log or API answer.
func secretForms() []string {
	sum := md5.Sum([]byte(secretToken))
	derived := "drv-" + hex.EncodeToString(sum[:])[:16]
	forms := []string{secretToken, derived, base64.StdEncoding.EncodeToString([]byte(derived)),
		url.QueryEscape(secretToken), strings.Trim(mustJSON(secretToken), `"`),
		"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for off := 0; off < 3; off++ {
			// The groups that only the secret's bytes decide.
			t := secretToken[(3-off)%3:]
			e := enc.EncodeToString([]byte(t[:len(t)/3*3]))
			forms = append(forms, e)
		}
	}
	return forms
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestSecretsMasked is the acceptance suite of masking: secrets set with
// the CLI (values on stdin) reach a Docker step as a variable and a tmpfs
// file, and no form of them (1-byte writes, PEM lines, joined and CRLF,
// base64 at each offset, URL and JSON escapes, a value registered at run
// time) appears in the stored log, the live log or any API answer.
func TestSecretsMasked(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	srv := startServer(t, dir, "")
	bare, work := repoSetup(t, dir)
	srv.createRepo(map[string]any{"name": "app", "forge": "git", "clone_url": bare})
	setSecret := func(name, value string, args ...string) {
		cmd := exec.Command(binary, append([]string{"secret", "set", name, "--repo", "app", "--server", srv.url, "--token", srv.token}, args...)...)
		cmd.Stdin = strings.NewReader(value)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("secret set %s: %v\n%s", name, err, out)
		}
	}
	setSecret("TOKEN", secretToken+"\n")
	setSecret("KEY", secretPEM)
	out := runnel(t, "secret", "list", "--repo", "app", "--server", srv.url, "--token", srv.token)
	if !strings.Contains(out, "TOKEN") || !strings.Contains(out, "KEY") {
		t.Fatalf("secret list:\n%s", out)
	}
	forms := secretForms()
	checkClean := func(what string, b []byte) {
		t.Helper()
		for _, f := range forms {
			if bytes.Contains(b, []byte(f)) {
				t.Errorf("%s shows %q:\n%s", what, f, b)
			}
		}
	}
	checkClean("secret list", []byte(out))

	// An unknown secret stops the run at creation, with its position.
	sha := commit(t, work, strings.Replace(secretsPipeline(), "      - TOKEN\n", "      - TOKEN\n      - NOPE\n", 1))
	git(t, work, "push", "-q", "origin", "main")
	id := triggerRun(t, srv, sha)
	r := srv.waitRun(sha, 2*time.Minute, terminal)
	_, b := srv.api("GET", fmt.Sprintf("/api/v1/runs/%d", id))
	if r.Status != "error" || !strings.Contains(string(b), `"code": "unknown-secret"`) || !strings.Contains(string(b), `"line": 7`) {
		t.Fatalf("run with an unknown secret = %s; want error with unknown-secret at line 7:\n%s", r.Status, b)
	}

	sha = commit(t, work, secretsPipeline())
	git(t, work, "push", "-q", "origin", "main")
	id = triggerRun(t, srv, sha)
	// Follow the live log of the one-byte step while it runs.
	live := make(chan []byte, 1)
	go func() {
		_, b := srv.do("GET", fmt.Sprintf("/api/v1/runs/%d/stages/leak/steps/onebyte/log", id), nil,
			map[string]string{"Authorization": "Bearer " + srv.token, "Accept": "text/event-stream"})
		live <- b
	}()
	r = srv.waitRun(sha, 3*time.Minute, terminal)
	if r.Status != "success" {
		t.Fatalf("run = %s %s; server log:\n%s", r.Status, r.Reason, srv.log())
	}
	logs := map[string]string{}
	for _, st := range r.Stages[0].Steps {
		code, b := srv.api("GET", st.Log)
		if code != http.StatusOK {
			t.Fatalf("log of %s: %d %s", st.Name, code, b)
		}
		logs[st.Name] = string(b)
		checkClean("stored log of "+st.Name, b)
	}
	wantLog(t, "plain", logs["plain"], "plain ***", "env: TOKEN=***", "/run/secrets/key.pem")
	wantLog(t, "onebyte", logs["onebyte"], "***")
	wantLog(t, "pem", logs["pem"], "***\n***\n***")
	wantLog(t, "encoded", logs["encoded"], "url ***", `json "***"`)
	wantLog(t, "derived", logs["derived"], "::add-mask::***", "derived ***")
	select {
	case b := <-live:
		checkClean("live log of onebyte", b)
		if !bytes.Contains(b, []byte("***")) {
			t.Errorf("live log of onebyte has no mask: %s", b)
		}
	case <-time.After(time.Minute):
		t.Error("the live log did not end")
	}
	for _, p := range []string{fmt.Sprintf("/api/v1/runs/%d", id), "/api/v1/runs", "/api/v1/secrets?repo=app", "/api/v1/repos/app"} {
		_, b := srv.api("GET", p)
		checkClean("GET "+p, b)
	}
	// Nothing of the stage is left on Docker (a finished container's
	// inspect would show its environment). Run ids are per install: other
	// servers on this Docker have a run of this id too.
	out2, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+docker.LabelInstall+"="+readID(t, filepath.Join(dir, "data")),
		"--filter", "label="+docker.LabelRun+"="+fmt.Sprint(id)).Output()
	if strings.TrimSpace(string(out2)) != "" {
		t.Errorf("containers of run %d left: %s", id, out2)
	}
}

// triggerRun starts a run of sha on main by the API and returns its id.
func triggerRun(t *testing.T, srv *server, sha string) int64 {
	t.Helper()
	code, b := srv.do("POST", "/api/v1/repos/app/trigger", strings.NewReader(`{"branch":"main","commit":"`+sha+`"}`),
		map[string]string{"Authorization": "Bearer " + srv.token})
	if code != http.StatusCreated {
		t.Fatalf("trigger: %d %s", code, b)
	}
	var created struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	return created.ID
}
