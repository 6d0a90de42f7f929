package s3_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	artifacts3 "github.com/runnel-ci/runnel/artifact/s3"
	"github.com/runnel-ci/runnel/internal/s3test"
)

const (
	testBucket = "runnel-artifacts"
	accessKey  = s3test.AccessKey
	secretKey  = s3test.SecretKey
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
	bin, err := s3test.Find()
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
	g, err := s3test.Start(bin, dir)
	if err != nil {
		gwErr = err
		return m.Run()
	}
	defer g.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.CreateBucket(ctx, testBucket); err != nil {
		gwErr = fmt.Errorf("create bucket: %w", err)
		return m.Run()
	}
	gw = &gateway{endpoint: g.Endpoint, dir: g.Dir}
	return m.Run()
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
