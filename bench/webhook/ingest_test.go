package webhook

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// scenario is one load shape.
type scenario struct {
	name string
	run  func(ctx context.Context, l *loader) *result
}

func scenarios(n int, rate float64, d time.Duration) []scenario {
	closed := func(conc int) scenario {
		return scenario{fmt.Sprintf("closed n=%d c=%d", n, conc), func(ctx context.Context, l *loader) *result {
			return l.closed(ctx, n, conc)
		}}
	}
	return []scenario{closed(16), closed(64),
		{fmt.Sprintf("open %.0f/s for %s", rate, d), func(ctx context.Context, l *loader) *result {
			return l.open(ctx, rate, d, 2000)
		}}}
}

// measure runs every scenario against the baseline and against a fresh
// Runnel server on dsn, verifies the Runnel deliveries, and logs a table.
//
// After each Runnel load the trigger rate is measured for window; with
// drain the test also waits (at most maxDrain) until every delivery was
// processed into a run.
func measure(t *testing.T, dsn string, sc []scenario, window time.Duration, drain bool, maxDrain time.Duration) {
	for _, s := range sc {
		t.Run(s.name, func(t *testing.T) {
			ctx := context.Background()
			rn := runnel(t, dsn)
			base := baseline(t, rn.body)
			for _, tc := range []struct {
				name string
				tgt  *target
			}{{"baseline", base}, {"runnel", rn}} {
				l := newLoader(tc.tgt, 2000, fmt.Sprintf("%s-%d", tc.name, time.Now().UnixNano()))
				r := s.run(ctx, l)
				l.close()
				t.Logf("%-8s %s (goroutines after the load: %d)", tc.name, r, runtime.NumGoroutine())
				if r.errors > 0 {
					t.Errorf("%s: %d errors, first: %s", tc.name, r.errors, r.firstErr)
				}
				if tc.tgt.verify == nil {
					continue
				}
				vctx, cancel := context.WithTimeout(ctx, maxDrain)
				c, err := tc.tgt.verify(vctx, r.sent, window, drain)
				cancel()
				if err != nil {
					t.Errorf("verify: %v", err)
					continue
				}
				t.Logf("verified: %d deliveries stored exactly once; at the end of the load %d processed into runs, %d waiting for their trigger; trigger rate after the load %.0f runs/s",
					len(r.sent), c.processed, c.pending, c.rate)
				if drain {
					t.Logf("all triggers ran %.1f s after the last answer (%.0f runs/s from the first request)",
						c.drain.Seconds(), float64(len(r.sent))/(r.elapsed+c.drain).Seconds())
				}
			}
		})
	}
}

func backends(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "") })
	t.Run("postgres", func(t *testing.T) {
		dsn := os.Getenv("RUNNEL_TEST_POSTGRES")
		if dsn == "" {
			if os.Getenv("CI") != "" {
				t.Fatal("CI is set but RUNNEL_TEST_POSTGRES is empty")
			}
			t.Skip("RUNNEL_TEST_POSTGRES not set")
		}
		fn(t, dsn)
	})
}

// TestIngestSmoke is a small run of every scenario: it keeps the
// benchmark working in `go test ./...` and checks exactly-once storage.
func TestIngestSmoke(t *testing.T) {
	backends(t, func(t *testing.T, dsn string) {
		measure(t, dsn, scenarios(100, 200, 500*time.Millisecond), 200*time.Millisecond, true, time.Minute)
	})
}

// TestIngest is the measurement of docs/benchmarks.md. It runs only with
// RUNNEL_BENCH_WEBHOOK=1; RUNNEL_BENCH_WEBHOOK_N (requests per closed
// run, default 20000), _RATE (default 2000) and _SECONDS (default 10)
// change its size; RUNNEL_BENCH_WEBHOOK_DRAIN=1 waits until every
// trigger ran (minutes: the triggers are much slower than ingestion).
func TestIngest(t *testing.T) {
	if os.Getenv("RUNNEL_BENCH_WEBHOOK") == "" {
		t.Skip("set RUNNEL_BENCH_WEBHOOK=1 to run the webhook ingestion benchmark")
	}
	n := envInt("RUNNEL_BENCH_WEBHOOK_N", 20000)
	rate := envInt("RUNNEL_BENCH_WEBHOOK_RATE", 2000)
	secs := envInt("RUNNEL_BENCH_WEBHOOK_SECONDS", 10)
	backends(t, func(t *testing.T, dsn string) {
		measure(t, dsn, scenarios(n, float64(rate), time.Duration(secs)*time.Second), 10*time.Second,
			os.Getenv("RUNNEL_BENCH_WEBHOOK_DRAIN") != "", 20*time.Minute)
	})
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
