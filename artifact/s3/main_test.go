package s3_test

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
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	artifacts3 "github.com/runnel-ci/runnel/artifact/s3"
)

const (
	testBucket = "runnel-artifacts"
	accessKey  = "runnel-test"
	secretKey  = "runnel-test-secret"
)

// gw is the versitygw started by TestMain; gwErr says why there is none.
var (
	gw    *gateway
	gwErr error
)

type gateway struct {
	endpoint string
	dir      string // posix backend directory (bucket = gw.dir/bucket)
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	bin, err := findVersitygw()
	if err != nil {
		gwErr = err
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "runnel-versitygw-")
	if err != nil {
		gwErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	stop, g, err := startGateway(bin, dir)
	if err != nil {
		gwErr = err
		return m.Run()
	}
	defer stop()
	gw = g
	return m.Run()
}

// findVersitygw looks in $RUNNEL_TEST_VERSITYGW, PATH and $(go env GOPATH)/bin.
func findVersitygw() (string, error) {
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startGateway(bin, dir string) (func(), *gateway, error) {
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		return nil, nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken meanwhile
		port, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("versitygw-%d.log", attempt)))
		if err != nil {
			return nil, nil, err
		}
		cmd := exec.Command(bin, "--port", fmt.Sprintf("127.0.0.1:%d", port), "--health", "/health", "posix", data)
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+accessKey, "ROOT_SECRET_KEY="+secretKey)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, nil, fmt.Errorf("start versitygw: %w", err)
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
		if err := waitHealthy(endpoint, exited); err != nil {
			stop()
			log, _ := os.ReadFile(logf.Name())
			lastErr = fmt.Errorf("versitygw on port %d: %w; log:\n%s", port, err, log)
			continue
		}
		g := &gateway{endpoint: endpoint, dir: data}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := g.client(ctx).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(testBucket)}); err != nil {
			stop()
			return nil, nil, fmt.Errorf("create bucket: %w", err)
		}
		return stop, g, nil
	}
	return nil, nil, lastErr
}

func waitHealthy(endpoint string, exited <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited early: %v", err)
		default:
		}
		resp, err := http.Get(endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no healthy answer within 20s")
}

// client returns a raw SDK client for the gateway.
func (g *gateway) client(ctx context.Context) *awss3.Client {
	s, err := artifacts3.New(ctx, g.config(""))
	if err != nil {
		panic(err)
	}
	return s.Client()
}

func (g *gateway) config(prefix string) artifacts3.Config {
	return artifacts3.Config{
		Bucket:          testBucket,
		Prefix:          prefix,
		Endpoint:        g.endpoint,
		PathStyle:       true,
		Region:          "us-east-1",
		AccessKeyID:     accessKey,
		SecretAccessKey: secretKey,
	}
}

// needGateway skips (or, with CI set, fails) when no versitygw runs.
func needGateway(tb testing.TB) *gateway {
	tb.Helper()
	if gw != nil {
		return gw
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("S3 tests need versitygw and CI is set: %v", gwErr)
	}
	tb.Skipf("S3 tests need versitygw: %v", gwErr)
	return nil
}
