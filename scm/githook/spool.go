package githook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/runnel-ci/runnel/scm/generic"
)

// SpoolDir is the directory inside a bare repository where the hook keeps
// the pushes the server has not accepted yet, one file per pushed ref, in
// push order. FailedDir, inside it, keeps pushes the server refused.
const (
	SpoolDir  = "runnel-spool"
	FailedDir = "failed"
)

// spooled is one pushed ref waiting for the server. Delivery is the
// delivery id it is always sent with, so the server, which keeps delivery
// ids, makes one run of it however often it is sent.
type spooled struct {
	Delivery string          `json:"delivery"`
	Payload  generic.Payload `json:"payload"`
	At       time.Time       `json:"at"`
}

// FlushResult counts what a Flush did with the spooled pushes.
type FlushResult struct {
	Sent   int // accepted by the server (a run, nothing to run, or already received)
	Left   int // still spooled: the server did not answer or was unavailable
	Failed int // refused by the server; moved to FailedDir
}

// spool writes entries into dir, each atomically (a temporary file,
// synced, renamed into place), named so that names sort in push order.
func spool(dir string, entries []spooled) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	now := time.Now().UnixNano()
	for i, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		name := fmt.Sprintf("%019d-%04d-%s.json", now, i, e.Delivery)
		if err := writeFileAtomic(dir, name, b); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	return syncDir(dir)
}

func writeFileAtomic(dir, name string, b []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails once renamed, as it should
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Flush sends the pushes spooled in the repository at cfg.RepoPath to
// cfg.ServerURL, oldest first, and removes each once the server answered
// it. It stops at the first push the server does not take (no answer, or
// 5xx, 408, 429): that one and the later ones stay spooled, in order. A
// push the server refuses (another 4xx) is moved to FailedDir and counted
// as Failed; Flush then returns an error. Flushes of one repository run
// one at a time (a file lock, also across processes); sending a push
// twice, after a crash between the answer and the removal, is harmless.
// It reports per push to cfg.Out.
func Flush(ctx context.Context, cfg Config) (FlushResult, error) {
	var res FlushResult
	dir := filepath.Join(cfg.RepoPath, SpoolDir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return res, nil
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return res, fmt.Errorf("flush %s: %w", dir, err)
	}
	defer unlock()
	names, err := pendingNames(dir)
	if err != nil {
		return res, fmt.Errorf("flush %s: %w", dir, err)
	}
	out, client := cfg.out(), cfg.client()
	endpoint := strings.TrimRight(cfg.ServerURL, "/") + generic.Path
	var errs []error
	for i, name := range names {
		e, err := readSpooled(filepath.Join(dir, name))
		if err == nil {
			var status int
			status, err = post(ctx, client, endpoint, cfg.Token, e.Delivery, &e.Payload)
			if transient(status, err) {
				res.Left = len(names) - i
				reportDelayed(out, dir, cfg.ServerURL, err, names[i:])
				break
			}
			if err == nil {
				res.Sent++
				reportSent(out, e, status)
				if err := os.Remove(filepath.Join(dir, name)); err != nil {
					errs = append(errs, fmt.Errorf("remove sent push %s: %w", name, err))
				}
				continue
			}
			err = fmt.Errorf("could not queue a run for %s: %w", e.Payload.Ref, err)
		}
		res.Failed++
		errs = append(errs, moveFailed(out, dir, name, err))
	}
	return res, errors.Join(errs...)
}

// transient reports an answer (or none) after which the push may be sent
// again later.
func transient(status int, err error) bool {
	if err == nil {
		return false
	}
	return status == 0 || status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

func reportSent(out io.Writer, e *spooled, status int) {
	delayed := ""
	if d := time.Since(e.At); d > 10*time.Second {
		delayed = fmt.Sprintf(" (pushed %s ago)", d.Round(time.Second))
	}
	switch status {
	case http.StatusNoContent:
		fmt.Fprintf(out, "runnel: nothing to run for %s%s\n", e.Payload.Ref, delayed)
	case http.StatusOK: // the server had received this delivery already
		fmt.Fprintf(out, "runnel: the run for %s was queued before%s\n", e.Payload.Ref, delayed)
	default:
		fmt.Fprintf(out, "runnel: queued run for %s%s\n", e.Payload.Ref, delayed)
	}
}

func reportDelayed(out io.Writer, dir, server string, err error, left []string) {
	fmt.Fprintf(out, "runnel: the server %s did not take the push: %v\n", server, err)
	for _, name := range left {
		ref := name
		if e, err := readSpooled(filepath.Join(dir, name)); err == nil {
			ref = e.Payload.Ref
		}
		fmt.Fprintf(out, "runnel: the run for %s is delayed, not lost: the push is spooled in %s\n", ref, dir)
	}
	fmt.Fprintf(out, "runnel: spooled pushes are sent by the next push, by \"runnel hook flush\" and when the server starts\n")
}

// moveFailed moves a refused or unreadable push out of the queue, keeping
// it for the administrator, and returns the error to report.
func moveFailed(out io.Writer, dir, name string, cause error) error {
	failed := filepath.Join(dir, FailedDir)
	err := os.MkdirAll(failed, 0o750)
	if err == nil {
		err = os.Rename(filepath.Join(dir, name), filepath.Join(failed, name))
	}
	if err != nil {
		fmt.Fprintf(out, "runnel: %v (it stays spooled: %v)\n", cause, err)
		return errors.Join(cause, err)
	}
	fmt.Fprintf(out, "runnel: %v (kept in %s; move it back to %s and run \"runnel hook flush\" to send it again)\n",
		cause, filepath.Join(failed, name), dir)
	return cause
}

// pendingNames lists the spooled pushes in dir, oldest first.
func pendingNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && !strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".json") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// maxSpooled bounds one spool file; a pushed ref's payload is small.
const maxSpooled = generic.MaxBodySize

func readSpooled(path string) (*spooled, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSpooled+1))
	if err != nil {
		return nil, err
	}
	var e spooled
	if len(b) > maxSpooled {
		return nil, fmt.Errorf("spooled push %s: larger than %d bytes", path, maxSpooled)
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Delivery == "" || e.Payload.Ref == "" {
		return nil, fmt.Errorf("spooled push %s: not a spooled push (%v)", path, err)
	}
	return &e, nil
}

// lockDir takes an exclusive lock on dir/.lock, released by the returned
// function or by the process's death.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() { f.Close() }, nil
}
