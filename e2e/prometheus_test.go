package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// prometheus is a real Prometheus process (Debian's package) scraping one
// target every second.
type prometheus struct {
	t    *testing.T
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	logf string
}

// needPrometheus returns the path of the prometheus binary; it fails
// under CI and skips elsewhere when there is none.
func needPrometheus(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("prometheus")
	if err == nil {
		return path
	}
	msg := "prometheus not installed (apt-get install prometheus): " + err.Error()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startPrometheus starts Prometheus with its own config and TSDB under dir,
// scraping target (host:port) every second, and waits until it is ready.
func startPrometheus(t *testing.T, bin, dir, target string) *prometheus {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: runnel
    static_configs:
      - targets: [%q]
`, target)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := &prometheus{t: t, url: "http://" + addr, done: make(chan struct{}), logf: filepath.Join(dir, "prometheus.log")}
	logf, err := os.Create(p.logf)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	go func() {
		p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() { stopProcess(p.cmd, p.done, syscall.SIGTERM) })
	deadline := time.Now().Add(60 * time.Second)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("prometheus exited; log:\n%s", p.log())
		case <-poll.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 60s; log:\n%s", p.log())
		}
	}
}

func (p *prometheus) log() string {
	b, _ := os.ReadFile(p.logf)
	return string(b)
}

// promSample is one element of an instant vector.
type promSample struct {
	Labels map[string]string
	Value  float64
}

// query evaluates expr at time at (Unix seconds) through /api/v1/query.
func (p *prometheus) query(expr string, at float64) ([]promSample, error) {
	q := url.Values{"query": {expr}, "time": {strconv.FormatFloat(at, 'f', 3, 64)}}
	resp, err := http.Get(p.url + "/api/v1/query?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("decode %s: %w", body, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", expr, out.Error)
	}
	if out.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", expr, out.Data.ResultType)
	}
	var res []promSample
	for _, r := range out.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", expr, r.Value[1], err)
		}
		res = append(res, promSample{Labels: r.Metric, Value: v})
	}
	return res, nil
}

// labelValues answers a Grafana label_values(metric, label) variable
// through /api/v1/label/{label}/values?match[]=metric.
func (p *prometheus) labelValues(match, label string) []string {
	p.t.Helper()
	resp, err := http.Get(p.url + "/api/v1/label/" + label + "/values?" + url.Values{"match[]": {match}}.Encode())
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Status != "success" {
		p.t.Fatalf("label values of %s for %s: %v (%s)", label, match, err, out.Status)
	}
	return out.Data
}

// scrapedAfter waits until Prometheus has scraped the server successfully
// at a time after t0 and returns the timestamp of that scrape (Unix
// seconds). Evaluating at exactly a scrape's timestamp leaves increase()
// nothing to extrapolate at the end of its window.
func (p *prometheus) scrapedAfter(t0 time.Time) float64 {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	for {
		now := float64(time.Now().UnixMilli()) / 1000
		ts, err1 := p.query(`timestamp(up{job="runnel"})`, now)
		up, err2 := p.query(`up{job="runnel"}`, now)
		if err1 == nil && err2 == nil && len(ts) == 1 && len(up) == 1 && up[0].Value == 1 &&
			ts[0].Value > float64(t0.UnixMilli())/1000 {
			return ts[0].Value
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no successful scrape after %s within 60s (%v %v %v %v); log:\n%s", t0, ts, up, err1, err2, p.log())
		}
		<-poll.C
	}
}
