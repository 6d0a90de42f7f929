package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is the traffic switch of one app: an HTTP reverse proxy that sends
// a percentage of the requests to the green upstream and the rest to the
// blue one. Routes are replaced atomically (Set); a request uses the routes
// current when it arrived. The split is deterministic: of every 100
// consecutive requests, exactly weight go to green.
//
// A Proxy is safe for concurrent use. The zero value is not usable; call
// NewProxy.
type Proxy struct {
	log    *slog.Logger
	routes atomic.Pointer[routes]
	n      atomic.Uint64

	mu     sync.Mutex // serialises fenced updates (SetRoutes)
	fences []fence    // the latest releases' highest attempts
}

type routes struct {
	blue, green     *url.URL
	weight          int
	blueRP, greenRP *httputil.ReverseProxy
}

// NewProxy returns a Proxy without upstreams, answering 503 until Set.
// log may be nil.
func NewProxy(log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{log: log}
	p.routes.Store(&routes{})
	return p
}

// Set replaces the routes: green receives weight percent (0..100) of the
// requests and blue the rest. A nil upstream receives nothing: with only
// one of them set, it receives every request whatever the weight.
func (p *Proxy) Set(blue, green *url.URL, weight int) {
	weight = min(max(weight, 0), 100)
	r := &routes{blue: blue, green: green, weight: weight}
	if blue != nil {
		r.blueRP = p.reverseProxy(blue)
	}
	if green != nil {
		r.greenRP = p.reverseProxy(green)
	}
	p.routes.Store(r)
}

// Routes returns the current routes.
func (p *Proxy) Routes() (blue, green *url.URL, weight int) {
	r := p.routes.Load()
	return r.blue, r.green, r.weight
}

func (p *Proxy) reverseProxy(u *url.URL) *httputil.ReverseProxy {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("deploy proxy: upstream failed", "upstream", u.String(), "err", err)
			http.Error(w, "upstream unavailable", http.StatusBadGateway)
		},
	}
	return rp
}

// ServeHTTP forwards r to blue or green.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := p.routes.Load()
	var rp *httputil.ReverseProxy
	switch {
	case rt.blueRP == nil && rt.greenRP == nil:
		http.Error(w, "no upstream", http.StatusServiceUnavailable)
		return
	case rt.blueRP == nil:
		rp = rt.greenRP
	case rt.greenRP == nil:
		rp = rt.blueRP
	case int((p.n.Add(1)-1)%100) < rt.weight:
		rp = rt.greenRP
	default:
		rp = rt.blueRP
	}
	rp.ServeHTTP(w, r)
}

// Serve serves the proxy on ln until ctx is done, then shuts down,
// letting requests in flight finish for up to 5 s.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("deploy proxy on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("deploy proxy on %s: shut down: %w", ln.Addr(), err)
	}
	return nil
}
