package awsfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// ContentType is the media type of AWS JSON 1.1 requests and responses.
const ContentType = "application/x-amz-json-1.1"

// maxBody bounds a request body (the largest AWS JSON requests, e.g. an
// inline AppSpec, are far below it).
const maxBody = 1 << 20

// Handler serves one operation. It runs with the Server's lock held. It
// returns the response document (marshalled with encoding/json) or an
// error: an *Error is sent as that typed error, any other error as an
// InternalFailure (HTTP 500).
type Handler func(r *Request) (any, error)

// Request is one decoded call.
type Request struct {
	// Target is the X-Amz-Target header; Op is its operation part.
	Target, Op string
	// AccessKey is the access key id of the request's signature.
	AccessKey string
	Body      []byte
	// Now is the Server's clock when the request arrived.
	Now time.Time
}

// Decode unmarshals the request body into v; a malformed body is a
// SerializationException.
func (r *Request) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return Errorf("SerializationException", "%s: %v", r.Op, err)
	}
	return nil
}

// Error is a typed AWS error: HTTP Status with {"__type", "message"}.
type Error struct {
	Status  int
	Type    string
	Message string
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// Errorf returns a typed error with HTTP status 400.
func Errorf(typ, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// Call records one request and how it was answered.
type Call struct {
	Time      time.Time
	Op        string
	AccessKey string
	Body      json.RawMessage
	// Error is the type of the error answered, "" on success.
	Error string
}

// Server is a fake AWS JSON 1.1 endpoint. Its zero value is not usable:
// make one with New.
type Server struct {
	// URL is the endpoint to give the SDK as BaseEndpoint.
	URL string

	ts       *httptest.Server
	mu       sync.Mutex
	handlers map[string]Handler
	calls    []Call
	offset   time.Duration
	changed  chan struct{} // closed and replaced whenever state may have changed
}

// New starts a Server that is closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{handlers: map[string]Handler{}, changed: make(chan struct{})}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.ts.URL
	t.Cleanup(s.ts.Close)
	return s
}

// Handle registers h for target, the full X-Amz-Target value.
func (s *Server) Handle(target string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[target] = h
}

// Config returns an SDK config for region whose clients call s with
// static credentials of accessKey.
func (s *Server) Config(region, accessKey string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, "fake-secret", ""),
		BaseEndpoint: aws.String(s.URL),
	}
}

// Now returns the Server's clock: real time plus what Advance added.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

func (s *Server) now() time.Time { return time.Now().Add(s.offset) }

// Advance moves the Server's clock forward by d and wakes Wait.
func (s *Server) Advance(d time.Duration) {
	s.Do(func() { s.offset += d })
}

// Do runs f under the Server's lock (to read or change a service's
// state) and then wakes Wait.
func (s *Server) Do(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	s.notify()
}

// notify wakes every Wait; the caller holds s.mu.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Wait returns nil once cond, evaluated under the Server's lock, is
// true; it re-evaluates cond after every call and every Do. It returns
// ctx's error when ctx ends first.
func (s *Server) Wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Calls returns the calls of operation op ("" for all), oldest first.
func (s *Server) Calls(op string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if op == "" || c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, hr *http.Request) {
	req, herr := parse(hr)
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	var resp any
	var err error
	if herr != nil {
		err = herr
	} else {
		req.Now = s.now()
		if h, ok := s.handlers[req.Target]; ok {
			resp, err = h(req)
		} else {
			err = Errorf("UnknownOperationException", "unknown operation %q", req.Target)
		}
	}
	c := Call{Time: s.now(), Op: req.Op, AccessKey: req.AccessKey, Body: json.RawMessage(req.Body)}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Amzn-RequestId", fmt.Sprintf("fake-%d", len(s.calls)+1))
	if err != nil {
		var ae *Error
		if !errors.As(err, &ae) {
			ae = &Error{Status: http.StatusInternalServerError, Type: "InternalFailure", Message: err.Error()}
		}
		c.Error = ae.Type
		s.calls = append(s.calls, c)
		w.WriteHeader(ae.Status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": ae.Type, "message": ae.Message})
		return
	}
	s.calls = append(s.calls, c)
	if resp == nil {
		resp = struct{}{}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// parse checks the protocol envelope of a request and reads it. The
// returned Request is never nil.
func parse(hr *http.Request) (*Request, error) {
	target := hr.Header.Get("X-Amz-Target")
	_, op, _ := strings.Cut(target, ".")
	req := &Request{Target: target, Op: op}
	if hr.Method != http.MethodPost || hr.URL.Path != "/" {
		return req, Errorf("UnknownOperationException", "%s %s: want POST /", hr.Method, hr.URL.Path)
	}
	if ct := hr.Header.Get("Content-Type"); ct != ContentType {
		return req, Errorf("SerializationException", "Content-Type %q, want %s", ct, ContentType)
	}
	if op == "" {
		return req, Errorf("UnknownOperationException", "X-Amz-Target %q names no operation", target)
	}
	key, ok := accessKey(hr.Header.Get("Authorization"))
	if !ok {
		return req, &Error{Status: http.StatusForbidden, Type: "MissingAuthenticationTokenException", Message: "request is not signed with SigV4"}
	}
	req.AccessKey = key
	body, err := io.ReadAll(io.LimitReader(hr.Body, maxBody+1))
	if err != nil {
		return req, Errorf("SerializationException", "read body: %v", err)
	}
	if len(body) > maxBody {
		return req, &Error{Status: http.StatusRequestEntityTooLarge, Type: "SerializationException", Message: "request body too large"}
	}
	req.Body = body
	return req, nil
}

// accessKey returns the access key id of a SigV4 Authorization header:
// "AWS4-HMAC-SHA256 Credential=AKID/20261205/us-east-1/codedeploy/aws4_request, ...".
func accessKey(auth string) (string, bool) {
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 Credential=")
	if !ok {
		return "", false
	}
	key, _, ok := strings.Cut(rest, "/")
	return key, ok && key != ""
}

// Epoch is a timestamp as AWS JSON protocols send it: seconds since the
// epoch, with milliseconds as the fraction.
func Epoch(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}
