package s3store

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// transport is an HTTP transport with connect and header timeouts.
func transport(stall time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: stall, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: stall,
		TLSHandshakeTimeout:   stall,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   16,
		// Objects are bytes as stored: no transparent gzip (which would
		// also let a server send a small body that inflates without bound).
		DisableCompression: true,
		IdleConnTimeout:    90 * time.Second,
	}
}

// watchdog cancels a request that makes no progress (no request bytes
// read, no response bytes received) for stall: a server that stops
// reading an upload or stops sending a body fails the request, which the
// client then retries with backoff. It also records the server's clock.
type watchdog struct {
	base  http.RoundTripper
	stall time.Duration
	skew  *atomic.Int64
}

func (w *watchdog) RoundTrip(req *http.Request) (*http.Response, error) {
	parent := req.Context()
	ctx, cancel := context.WithCancel(parent)
	timer := time.AfterFunc(w.stall, cancel)
	req = req.Clone(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &progressBody{rc: req.Body, timer: timer, stall: w.stall}
	}
	resp, err := w.base.RoundTrip(req)
	if err != nil {
		timer.Stop()
		cancel()
		if ctx.Err() != nil && parent.Err() == nil {
			return nil, stallError{w.stall}
		}
		return nil, err
	}
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		w.skew.Store(int64(clockSkew(time.Until(d))))
	}
	timer.Reset(w.stall)
	stalled := func() bool { return ctx.Err() != nil && parent.Err() == nil }
	resp.Body = &progressBody{rc: resp.Body, timer: timer, stall: w.stall, stalled: stalled, done: func() { timer.Stop(); cancel() }}
	return resp, nil
}

// progressBody re-arms the stall timer on every read.
type progressBody struct {
	rc    io.ReadCloser
	timer *time.Timer
	stall time.Duration
	// stalled says whether the watchdog (not the caller) cancelled the
	// request; a read that fails then fails with stallError.
	stalled func() bool
	done    func()
}

func (p *progressBody) Read(b []byte) (int, error) {
	n, err := p.rc.Read(b)
	if n > 0 {
		p.timer.Reset(p.stall)
	}
	if err != nil && err != io.EOF && p.stalled != nil && p.stalled() {
		err = stallError{p.stall}
	}
	return n, err
}

func (p *progressBody) Close() error {
	err := p.rc.Close()
	if p.done != nil {
		p.done()
	}
	return err
}

// stallError is a request that made no progress for too long. It is a
// timeout (net.Error), which the client retries.
type stallError struct{ d time.Duration }

func (e stallError) Error() string   { return fmt.Sprintf("the server stalled: no progress for %v", e.d) }
func (e stallError) Timeout() bool   { return true }
func (e stallError) Temporary() bool { return true }
