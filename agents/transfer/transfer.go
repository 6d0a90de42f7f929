package transfer

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/runnel-ci/runnel/agents/engine"
	"github.com/runnel-ci/runnel/agents/stage"
	"github.com/runnel-ci/runnel/artifact"
)

// DefaultMaxArchive bounds an uploaded archive when Transfer.MaxArchive
// is 0.
const DefaultMaxArchive = 10 << 30

// Transfer is the stage.Transfer of an agent or of `runnel run`. Its
// fields are read-only once it is in use; one Transfer may serve many
// stages at once.
type Transfer struct {
	// Files moves files in and out of workspaces: the executor's engine.
	Files engine.Files
	// Remote keeps artifacts, caches and fetched files; nil means there is
	// no store: artifacts and caches are skipped (the log says so) and
	// fetches use Fetcher alone.
	Remote Remote
	// Fetcher downloads and keeps fetched files on this machine.
	Fetcher *artifact.Fetcher
	// TempDir holds archives being built; "" means os.TempDir().
	TempDir string
	// MaxArchive bounds an archive built from a workspace; 0 means
	// DefaultMaxArchive.
	MaxArchive int64
	Logger     *slog.Logger

	mu     sync.Mutex
	stages map[*engine.Spec]*restored
}

var _ stage.Transfer = (*Transfer)(nil)

// restored is what Before learnt that After needs: each cache's key and
// whether it was an exact hit.
type restored struct {
	keys  []string
	exact []bool
}

func (t *Transfer) keep(s *engine.Spec, r *restored) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stages == nil {
		t.stages = map[*engine.Spec]*restored{}
	}
	t.stages[s] = r
}

func (t *Transfer) take(s *engine.Spec) *restored {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.stages[s]
	delete(t.stages, s)
	return r
}

// logf writes one "runnel: " line to a step log.
func logf(out io.Writer, format string, args ...any) {
	fmt.Fprintf(out, "runnel: "+format+"\n", args...)
}

// FetchClient is the HTTP client for fetches: at most 5 redirects, to
// http and https URLs only, and a bound on the time to the first byte.
func FetchClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > 5 { // via: the requests made so far, the first one included
				return fmt.Errorf("more than 5 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			return nil
		},
	}
}

// size formats a byte count for the log.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// count formats n things: "1 file", "2 files".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
