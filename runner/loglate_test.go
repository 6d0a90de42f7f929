package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/runner/natsserver"
	"github.com/runnel-ci/runnel/runner/runnertest"
	"github.com/runnel-ci/runnel/runner/store"
)

// failLate fails the handling of log chunk seq until the stage's end was
// handled, as a transient disk or database error would: the bus delivers
// it again 1 s later each time.
type failLate struct {
	natsserver.Handler
	seq           uint64
	failed, ended atomic.Bool
}

func (h *failLate) Log(ctx context.Context, c *wire.LogChunk) error {
	if c.Seq == h.seq && !h.ended.Load() {
		h.failed.Store(true)
		return errors.New("store log chunk: transient failure")
	}
	return h.Handler.Log(ctx, c)
}

func (h *failLate) Update(ctx context.Context, u *wire.Update) error {
	err := h.Handler.Update(ctx, u)
	if err == nil && u.Kind == wire.KindFinished {
		h.ended.Store(true)
	}
	return err
}

// TestLateLogChunkStored: a step prints 5 or more chunks (or one line);
// storing chunk 1 (or the first, 0) fails until the step's EOF chunk, its end and the stage's end were
// handled. The stored log is complete, and a follower
// that started before the step reads all of it and then ends.
func TestLateLogChunkStored(t *testing.T) {
	for _, tt := range []struct {
		seq   uint64
		lines int
	}{
		{1, 200000}, // `seq` prints 1288895 bytes: at least 5 chunks (wire.MaxChunk)
		{0, 200000},
		{0, 1}, // one chunk, the EOF one, or two: only the step's end says how many
	} {
		t.Run(fmt.Sprintf("chunk %d of %d lines", tt.seq, tt.lines), func(t *testing.T) { lateLogChunk(t, tt.seq, tt.lines) })
	}
}

func lateLogChunk(t *testing.T, seq uint64, lines int) {
	flaky := &failLate{seq: seq}
	f := newFixtureOpts(t, runnertest.Options{Wrap: func(h natsserver.Handler) natsserver.Handler {
		flaky.Handler = h
		return flaky
	}}, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ev := f.push(map[string]string{".pipeline.yml": fmt.Sprintf("version: 1\nstages:\n  a:\n    steps:\n      - name: s1\n        run: seq 1 %d\n", lines)})
	run, err := f.runner.Trigger(ctx, TriggerRequest{Repo: f.repo, Event: ev, Trigger: store.TriggerGitHook})
	if err != nil {
		t.Fatal(err)
	}
	key := LogKey(run.ID, "a", 1, 0)
	followed := make(chan []byte, 1)
	go func() {
		r := f.logs.Follow(ctx, key, 0, nil)
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			b = append(b, "\nfollow: "+err.Error()...)
		}
		followed <- b
	}()
	if run = f.wait(run.ID, time.Minute); run.Status != store.StatusSuccess {
		t.Fatalf("run %s, want success", run.Status)
	}
	var want bytes.Buffer
	for i := 1; i <= lines; i++ {
		want.WriteString(strconv.Itoa(i) + "\n")
	}
	var got []byte
	select {
	case got = <-followed:
	case <-ctx.Done():
		t.Fatal("follower did not end")
	}
	if !flaky.failed.Load() {
		t.Fatalf("chunk %d was never handled", seq)
	}
	if f.logs.Live(key) {
		t.Error("log still open after its follower ended")
	}
	if stored := f.log(run, "a", 0); stored != want.String() {
		t.Errorf("stored log: %d bytes, want %d", len(stored), want.Len())
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("follower read %d bytes, want %d", len(got), want.Len())
	}
}
