package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/runnel-ci/runnel/agents/wire"
	"github.com/runnel-ci/runnel/artifact"
)

// ErrExists is returned by Put when the object is stored already (another
// stage saved the same cache key, say): there is nothing to do.
var ErrExists = errors.New("stored already")

// HTTP is the Remote of an agent: the transfer API of a job's grant (see
// Transfers in the agents/wire package doc). The grant's URL carries a
// credential; errors never show it.
type HTTP struct {
	grant  wire.Transfer
	client *http.Client
}

var _ Remote = (*HTTP)(nil)

// NewHTTP returns the Remote of grant. client nil means one with bounded
// waits for answers (transfers themselves are bounded by their context).
func NewHTTP(grant wire.Transfer, client *http.Client) *HTTP {
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = 2 * time.Minute
		client = &http.Client{Transport: tr}
	}
	return &HTTP{grant: grant, client: client}
}

// apiError is an error answer of the transfer API.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return fmt.Sprintf("transfer API: %d %s", e.code, e.msg) }

// call POSTs in as JSON to <url>/op and decodes the answer into out.
func (h *HTTP) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.grant.URL+"/"+op, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("transfer API %s: bad grant URL", op)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("transfer API %s: %w", op, redactErr(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("transfer API %s: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(b, &e) //nolint:errcheck // the status tells enough without it
		return &apiError{code: resp.StatusCode, msg: e.Error}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("transfer API %s: decode answer: %w", op, err)
	}
	return nil
}

func code(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code
	}
	return 0
}

func (h *HTTP) lookup(ctx context.Context, kind Kind, name string, fallback []string) (Object, bool, error) {
	var o wire.Object
	err := h.call(ctx, "lookup", wire.LookupRequest{Kind: string(kind), Name: name, Fallback: fallback}, &o)
	if code(err) == http.StatusNotFound {
		return Object{}, false, nil
	}
	if err != nil {
		return Object{}, false, err
	}
	return Object{Kind: Kind(o.Kind), Name: o.Name, Key: o.Key, Size: o.Size, SHA256: o.SHA256, URL: o.URL}, true, nil
}

// Artifact implements Remote.
func (h *HTTP) Artifact(ctx context.Context, stageID string) (Object, bool, error) {
	return h.lookup(ctx, KindArtifact, stageID, nil)
}

// Cache implements Remote.
func (h *HTTP) Cache(ctx context.Context, key string, fallback []string) (Object, bool, bool, error) {
	o, found, err := h.lookup(ctx, KindCache, key, fallback)
	return o, found, found && o.Name == key, err
}

// Fetched implements Remote.
func (h *HTTP) Fetched(ctx context.Context, sum string) (Object, bool, error) {
	return h.lookup(ctx, KindFetch, sum, nil)
}

// Open implements Remote: a GET of the object's URL, verified on read.
func (h *HTTP) Open(ctx context.Context, o Object) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: bad URL", o.Key)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", o.Key, redactErr(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("read %s: %w", o.Key, artifact.ErrNotFound)
		}
		return nil, fmt.Errorf("read %s: HTTP status %s", o.Key, resp.Status)
	}
	// Four 1 MiB buffers read ahead: the network overlaps the checksum.
	return artifact.VerifyReader(newReadAhead(resp.Body, 4, 1<<20), o.Key, o.SHA256, o.Size), nil
}

// Put implements Remote: ask where, PUT the file there, commit.
func (h *HTTP) Put(ctx context.Context, kind Kind, name string, f *os.File, size int64, sum string) error {
	in := wire.UploadRequest{Kind: string(kind), Name: name, Size: size, SHA256: sum}
	var up wire.Upload
	err := h.call(ctx, "upload", in, &up)
	switch code(err) {
	case http.StatusForbidden:
		return ErrReadOnly
	case http.StatusConflict:
		return ErrExists
	}
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, up.URL, io.NewSectionReader(f, 0, size))
	if err != nil {
		return errors.New("upload: bad URL")
	}
	for k, vs := range up.Headers {
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	req.ContentLength = size
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", redactErr(err))
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("upload: HTTP status %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return h.call(ctx, "commit", in, nil)
}

// CacheWritable implements Remote.
func (h *HTTP) CacheWritable() bool { return h.grant.CacheWrite }

// redactErr keeps only scheme and host of the URL net/http's errors
// repeat: the path holds the job's token, the query a presigned
// signature.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = u.Scheme + "://" + u.Host + "/…"
		} else {
			ue.URL = "(URL)"
		}
	}
	return err
}
