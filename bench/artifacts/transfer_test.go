package artifacts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/runnel-ci/runnel/agents/transfer"
	"github.com/runnel-ci/runnel/artifact/s3"
	"github.com/runnel-ci/runnel/internal/s3test"
	"github.com/runnel-ci/runnel/pipeline"
	"github.com/runnel-ci/runnel/runner/store"
	"github.com/runnel-ci/runnel/runner/transfers"
)

const (
	bucket   = "runnel-bench"
	fileSize = 200 << 20
)

// bench is a server (database, transfer service on versitygw) and a 200
// MiB file.
type bench struct {
	b    *testing.B
	db   *store.Store
	svc  *transfers.Service
	raw  *awss3.Client
	repo *store.Repo
	file *os.File
	sum  string
	n    int
}

func newBench(b *testing.B) *bench {
	g := s3test.Need(b)
	ctx := context.Background()
	if err := g.CreateBucket(ctx, bucket); err != nil {
		b.Fatal(err)
	}
	st, err := s3.New(ctx, s3.Config{Bucket: bucket, Prefix: "runnel/", Endpoint: g.Endpoint, PathStyle: true, Region: "us-east-1",
		AccessKeyID: s3test.AccessKey, SecretAccessKey: s3test.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "runnel.db"), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	srv := httptest.NewServer(nil)
	b.Cleanup(srv.Close)
	svc, err := transfers.New(transfers.Config{DB: db, Store: st, BaseURL: srv.URL, Key: []byte(strings.Repeat("k", 32))})
	if err != nil {
		b.Fatal(err)
	}
	srv.Config.Handler = svc.Handler()
	repo, err := db.CreateRepo(ctx, store.Repo{Name: "bench", Forge: store.ForgeGit})
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "artifact.tar"))
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, fileSize); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return &bench{b: b, db: db, svc: svc, raw: g.Client(), repo: repo, file: f, sum: hex.EncodeToString(h.Sum(nil))}
}

// grant makes a run whose stage "build" uploads artifacts and "test"
// receives them, starts stage id and returns its agent's Remote.
func (x *bench) grant(run *store.Run, id string) *transfer.HTTP {
	ctx := context.Background()
	full, err := x.db.Run(ctx, run.ID)
	if err != nil {
		x.b.Fatal(err)
	}
	for i, st := range full.Stages {
		if st.Key != id {
			continue
		}
		attempt, err := x.db.QueueStage(ctx, st.ID)
		if err != nil {
			x.b.Fatal(err)
		}
		if err := x.db.UpdateStage(ctx, st.ID, attempt, store.StageUpdate{Status: store.StatusRunning, Agent: "a"}); err != nil {
			x.b.Fatal(err)
		}
		g := x.svc.Grant(full, full.Plan.Stages[i], attempt)
		return transfer.NewHTTP(*g, nil)
	}
	x.b.Fatalf("no stage %s", id)
	return nil
}

func (x *bench) newRun() *store.Run {
	build := &pipeline.Stage{ID: "build", Name: "build", Artifacts: &pipeline.Artifacts{Paths: []string{"out"}, When: pipeline.RunOnSuccess},
		Steps: []*pipeline.Step{{Name: "s", Run: "true"}}}
	test := &pipeline.Stage{ID: "test", Name: "test", Receive: []string{"build"}, Steps: []*pipeline.Step{{Name: "s", Run: "true"}}}
	run, err := x.db.CreateRun(context.Background(), store.NewRun{RepoID: x.repo.ID, Event: pipeline.Event{Kind: pipeline.EventPush},
		Plan: &pipeline.Plan{Stages: []*pipeline.Stage{build, test}}})
	if err != nil {
		x.b.Fatal(err)
	}
	return run
}

// upload puts the file as build's artifacts of a new run through Runnel.
func (x *bench) upload(timed bool) *store.Run {
	if timed {
		x.b.StopTimer()
	}
	run := x.newRun()
	remote := x.grant(run, "build")
	if timed {
		x.b.StartTimer()
	}
	if err := remote.Put(context.Background(), transfer.KindArtifact, "build", x.file, fileSize, x.sum); err != nil {
		x.b.Fatal(err)
	}
	return run
}

// BenchmarkTransfer200MiB: upload and download of a 200 MiB file by an
// agent through its grant ("runnel": the transfer API, then one presigned
// PUT carrying the signed SHA-256 / a lookup and a presigned GET read with
// the SHA-256 check), and the raw SDK's PutObject and GetObject of the
// same file with default settings, on the same versitygw. Each iteration
// does the four in turn, so that both sides see the same machine; the
// metrics are the medians in ms and the throughput ratios runnel/raw
// (raw time / runnel time: 1 is as fast as the SDK).
//
//	scripts/versitygw.sh
//	go test ./bench/artifacts -run '^$' -bench Transfer200MiB -benchtime 9x
func BenchmarkTransfer200MiB(b *testing.B) {
	x := newBench(b)
	ctx := context.Background()
	run := x.upload(false)
	down := x.grant(run, "test")
	var upR, upRaw, downR, downRaw []time.Duration
	timed := func(d *[]time.Duration, f func()) {
		t0 := time.Now()
		f()
		*d = append(*d, time.Since(t0))
	}
	b.SetBytes(4 * fileSize)
	for b.Loop() {
		b.StopTimer()
		next := x.newRun()
		up := x.grant(next, "build")
		b.StartTimer()
		timed(&upR, func() {
			if err := up.Put(ctx, transfer.KindArtifact, "build", x.file, fileSize, x.sum); err != nil {
				b.Fatal(err)
			}
		})
		x.n++
		key := fmt.Sprintf("raw/%d", x.n)
		timed(&upRaw, func() {
			if _, err := x.file.Seek(0, io.SeekStart); err != nil {
				b.Fatal(err)
			}
			_, err := x.raw.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
				Body: x.file, ContentLength: aws.Int64(fileSize)})
			if err != nil {
				b.Fatal(err)
			}
		})
		timed(&downR, func() {
			o, found, err := down.Artifact(ctx, "build")
			if err != nil || !found {
				b.Fatalf("lookup: %v %v", found, err)
			}
			rc, err := down.Open(ctx, o)
			if err != nil {
				b.Fatal(err)
			}
			defer rc.Close()
			if n, err := io.Copy(io.Discard, rc); err != nil || n != fileSize {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		})
		timed(&downRaw, func() {
			out, err := x.raw.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			if err != nil {
				b.Fatal(err)
			}
			defer out.Body.Close()
			if n, err := io.Copy(io.Discard, out.Body); err != nil || n != fileSize {
				b.Fatalf("read %d bytes: %v", n, err)
			}
		})
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(median(upR)), "up-runnel-ms")
	b.ReportMetric(ms(median(upRaw)), "up-raw-ms")
	b.ReportMetric(ms(median(downR)), "down-runnel-ms")
	b.ReportMetric(ms(median(downRaw)), "down-raw-ms")
	b.ReportMetric(float64(median(upRaw))/float64(median(upR)), "up-ratio")
	b.ReportMetric(float64(median(downRaw))/float64(median(downR)), "down-ratio")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
