// Package s3test runs versitygw, the S3-compatible server the tests of
// the S3 store and of the server's artifact store use: it finds the
// binary, starts it on a free 127.0.0.1 port with a posix directory, and
// creates buckets. Tests without versitygw skip, or fail when CI is set.
package s3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// Credentials of every gateway this package starts.
const (
	AccessKey = "runnel-test"
	SecretKey = "runnel-test-secret"
)

// Gateway is a running versitygw.
type Gateway struct {
	Endpoint string // http://127.0.0.1:PORT
	Dir      string // the posix backend: bucket B's object K is Dir/B/K
	stop     func()
}

// Find looks for versitygw in $RUNNEL_TEST_VERSITYGW, PATH and
// $(go env GOPATH)/bin (scripts/versitygw.sh installs it there).
func Find() (string, error) {
	if p := os.Getenv("RUNNEL_TEST_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("RUNNEL_TEST_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(gp, "bin", "versitygw")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("versitygw not found (set RUNNEL_TEST_VERSITYGW or run scripts/versitygw.sh)")
}

// Need starts a gateway below a temporary directory of t and stops it
// when t ends; without versitygw t is skipped, or fails when CI is set.
func Need(t testing.TB) *Gateway {
	t.Helper()
	bin, err := Find()
	if err == nil {
		var g *Gateway
		if g, err = Start(bin, t.TempDir()); err == nil {
			t.Cleanup(g.Stop)
			return g
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("S3 tests need versitygw and CI is set: %v", err)
	}
	t.Skipf("S3 tests need versitygw: %v", err)
	return nil
}

// Start starts versitygw with its data and logs below dir.
func Start(bin, dir string) (*Gateway, error) {
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := range 3 { // a free port can be taken meanwhile
		g, err := start(bin, dir, data, attempt)
		if err == nil {
			return g, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(bin, dir, data string, attempt int) (*Gateway, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("versitygw-%d.log", attempt)))
	if err != nil {
		return nil, err
	}
	// The health path is this gateway's own: a port taken meanwhile by
	// another test's gateway does not answer it.
	health := fmt.Sprintf("/health-%d-%d-%d", os.Getpid(), port, time.Now().UnixNano())
	cmd := exec.Command(bin, "--port", fmt.Sprintf("127.0.0.1:%d", port), "--health", health, "posix", data)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitHealthy(endpoint+health, exited); err != nil {
		stop()
		log, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("versitygw on port %d: %w; log:\n%s", port, err, log)
	}
	return &Gateway{Endpoint: endpoint, Dir: data, stop: stop}, nil
}

func waitHealthy(url string, exited <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited early: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond) // polling a process that gives no other signal
	}
	return fmt.Errorf("no healthy answer within 20s")
}

// Stop stops the gateway.
func (g *Gateway) Stop() { g.stop() }

// Client returns a raw SDK client for the gateway.
func (g *Gateway) Client() *awss3.Client {
	return awss3.New(awss3.Options{
		BaseEndpoint: aws.String(g.Endpoint),
		UsePathStyle: true,
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// CreateBucket creates bucket.
func (g *Gateway) CreateBucket(ctx context.Context, bucket string) error {
	_, err := g.Client().CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)})
	return err
}

// Env is the AWS environment that points the standard credential chain
// at the gateway.
func (g *Gateway) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey, "AWS_REGION=us-east-1"}
}
