package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func hmacHex(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// result is what one load run measured.
type result struct {
	sent     []string        // delivery IDs answered 202
	lat      []time.Duration // per request, sorted
	errors   int             // transport errors and non-202 answers
	dropped  int             // open loop: not sent because maxInFlight was reached
	firstErr string
	elapsed  time.Duration // first send to last answer
	offered  float64       // open loop: requested rate
}

func (r *result) throughput() float64 {
	return float64(len(r.lat)) / r.elapsed.Seconds()
}

// pct is the nearest-rank percentile p (0..100) of the sorted latencies.
func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(p/100*float64(len(r.lat))+0.5) - 1
	return r.lat[max(0, min(i, len(r.lat)-1))]
}

func (r *result) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("%d req, %.0f req/s, p50 %s ms, p90 %s ms, p99 %s ms, max %s ms, errors %d, dropped %d",
		len(r.lat), r.throughput(), ms(r.pct(50)), ms(r.pct(90)), ms(r.pct(99)), ms(r.pct(100)), r.errors, r.dropped)
}

// loader sends signed push deliveries to a target.
type loader struct {
	tgt    *target
	client *http.Client
	prefix string // of delivery IDs, unique per run
}

func newLoader(tgt *target, conns int, prefix string) *loader {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
		DisableCompression: true}
	return &loader{tgt: tgt, client: &http.Client{Transport: tr, Timeout: time.Minute}, prefix: prefix}
}

func (l *loader) close() { l.client.CloseIdleConnections() }

// send posts delivery i; it returns the delivery ID and an error for
// anything but a 202.
func (l *loader) send(ctx context.Context, i int) (string, error) {
	id := fmt.Sprintf("%s-%08d", l.prefix, i)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.tgt.url, bytes.NewReader(l.tgt.body))
	if err != nil {
		return id, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/bench")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", l.tgt.sig)
	resp, err := l.client.Do(req)
	if err != nil {
		return id, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return id, fmt.Errorf("delivery %s: got %s, want 202: %s", id, resp.Status, bytes.TrimSpace(b))
	}
	return id, nil
}

// collector gathers answers from concurrent senders.
type collector struct {
	mu  sync.Mutex
	res result
}

func (c *collector) add(id string, d time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.res.errors++
		if c.res.firstErr == "" {
			c.res.firstErr = err.Error()
		}
		return
	}
	c.res.sent = append(c.res.sent, id)
	c.res.lat = append(c.res.lat, d)
}

func (c *collector) done(start time.Time) *result {
	c.res.elapsed = time.Since(start)
	slices.Sort(c.res.lat)
	return &c.res
}

// closed sends n requests from conc workers, each sending its next
// request when the previous one was answered.
func (l *loader) closed(ctx context.Context, n, conc int) *result {
	var (
		c    collector
		next atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				id, err := l.send(ctx, i)
				c.add(id, time.Since(t0), err)
			}
		}()
	}
	wg.Wait()
	return c.done(start)
}

// open sends rate requests per second for d, each at its scheduled time
// whether or not earlier ones were answered. Latency counts from the
// scheduled time, so a sender that falls behind shows up as latency
// (no coordinated omission). At most maxInFlight requests are
// outstanding; a request due beyond that is dropped and counted.
func (l *loader) open(ctx context.Context, rate float64, d time.Duration, maxInFlight int) *result {
	var (
		c        collector
		wg       sync.WaitGroup
		inFlight atomic.Int64
		dropped  int
	)
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		if ctx.Err() != nil {
			break
		}
		if inFlight.Load() >= int64(maxInFlight) {
			dropped++
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inFlight.Add(-1)
			id, err := l.send(ctx, i)
			c.add(id, time.Since(due), err)
		}()
	}
	wg.Wait()
	r := c.done(start)
	r.dropped, r.offered = dropped, rate
	return r
}
