package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ErrHTTP is wrapped by errors for HTTP statuses that are not retried.
var ErrHTTP = errors.New("http error")

// ErrStalled is wrapped when a server sent nothing for the stall timeout
// (no response, or no bytes of a body).
var ErrStalled = errors.New("server stalled")

// DefaultStall is the stall timeout when Client.Stall is zero.
const DefaultStall = 60 * time.Second

// Client downloads with retries.
type Client struct {
	HTTP    *http.Client  // nil: a client with connect and TLS timeouts
	Retries int           // attempts after the first; 0 means 5, negative none
	Backoff time.Duration // first wait between attempts, doubled each time; 0 means 500ms
	// Stall bounds the wait for any progress: for the response headers
	// after the request is sent, and between two reads of a body that
	// return bytes. A stalled attempt counts as a broken one (retried or
	// resumed). 0 means DefaultStall.
	Stall time.Duration
	Log   *slog.Logger

	once sync.Once
	hc   *http.Client
}

func (c *Client) stall() time.Duration {
	if c.Stall > 0 {
		return c.Stall
	}
	return DefaultStall
}

func (c *Client) retries() int {
	switch {
	case c.Retries > 0:
		return c.Retries
	case c.Retries < 0:
		return 0
	}
	return 5
}

func (c *Client) backoff(attempt int) time.Duration {
	b := c.Backoff
	if b <= 0 {
		b = 500 * time.Millisecond
	}
	return b << min(attempt, 6)
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	c.once.Do(func() {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		c.hc = &http.Client{Transport: &http.Transport{
			Proxy:                  http.ProxyFromEnvironment,
			DialContext:            d.DialContext,
			TLSHandshakeTimeout:    30 * time.Second,
			MaxIdleConnsPerHost:    8,
			IdleConnTimeout:        90 * time.Second,
			ExpectContinueTimeout:  time.Second,
			MaxResponseHeaderBytes: 1 << 20,
		}}
	})
	return c.hc
}

// watch runs one request under a watchdog: the request's context is
// cancelled with ErrStalled when the wait for the response, or one read of
// the body, lasts the stall time. Time the caller spends between reads
// does not count.
type watch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	t      *time.Timer
	stall  time.Duration
}

func (c *Client) newWatch(ctx context.Context) *watch {
	w := &watch{stall: c.stall()}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	w.t = time.AfterFunc(w.stall, func() { w.cancel(ErrStalled) })
	return w
}

func (w *watch) arm()   { w.t.Reset(w.stall) }
func (w *watch) pause() { w.t.Stop() }

func (w *watch) stop() {
	w.t.Stop()
	w.cancel(nil)
}

// err says why an operation under the watch failed: a stall, or err.
func (w *watch) err(err error) error {
	if errors.Is(context.Cause(w.ctx), ErrStalled) {
		return fmt.Errorf("%w: nothing received for %v", ErrStalled, w.stall)
	}
	return err
}

// watchedBody arms its watch for the length of every read.
type watchedBody struct {
	io.ReadCloser
	w *watch
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.w.arm()
	n, err := b.ReadCloser.Read(p)
	b.w.pause()
	if err != nil && err != io.EOF {
		err = b.w.err(err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.w.stop()
	return b.ReadCloser.Close()
}

// transient reports whether a failed attempt is worth retrying.
func transient(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

func (c *Client) wait(ctx context.Context, attempt int) error {
	t := time.NewTimer(c.backoff(attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Get opens url. The reader resumes by itself after a broken transfer.
// size is the Content-Length, or -1.
func (c *Client) Get(ctx context.Context, url string) (io.ReadCloser, int64, error) {
	resp, err := c.do(ctx, url, 0, "")
	if err != nil {
		return nil, 0, err
	}
	r := &resumer{c: c, ctx: ctx, url: url, body: resp.Body, size: resp.ContentLength,
		validator: resp.Header.Get("ETag")}
	if r.validator == "" {
		r.validator = resp.Header.Get("Last-Modified")
	}
	return r, resp.ContentLength, nil
}

// do sends GET (from offset off with If-Range validator when off > 0),
// retrying transient failures.
func (c *Client) do(ctx context.Context, url string, off int64, validator string) (*http.Response, error) {
	var last error
	for attempt := 0; attempt <= c.retries(); attempt++ {
		if attempt > 0 {
			if err := c.wait(ctx, attempt-1); err != nil {
				return nil, err
			}
		}
		w := c.newWatch(ctx)
		req, err := http.NewRequestWithContext(w.ctx, http.MethodGet, url, nil)
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("%s: %w", url, err)
		}
		if off > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
			if validator != "" {
				req.Header.Set("If-Range", validator)
			}
		}
		resp, err := c.http().Do(req)
		if err != nil {
			w.stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last = fmt.Errorf("%s: %w", url, w.err(err))
			c.logRetry(url, attempt, last)
			continue
		}
		want := http.StatusOK
		if off > 0 {
			want = http.StatusPartialContent
		}
		if resp.StatusCode == want {
			w.pause()
			resp.Body = &watchedBody{ReadCloser: resp.Body, w: w}
			return resp, nil
		}
		resp.Body.Close()
		w.stop()
		last = fmt.Errorf("%s: %w: %s", url, ErrHTTP, resp.Status)
		if off > 0 && resp.StatusCode == http.StatusOK {
			return nil, fmt.Errorf("%s: the server cannot resume at byte %d (it sent the whole file): %w", url, off, ErrHTTP)
		}
		if !transient(resp.StatusCode) {
			return nil, last
		}
		c.logRetry(url, attempt, last)
	}
	return nil, fmt.Errorf("giving up after %d attempts: %w", c.retries()+1, last)
}

func (c *Client) logRetry(url string, attempt int, err error) {
	if c.Log != nil {
		c.Log.Warn("download failed; retrying", "url", url, "attempt", attempt+1, "err", err)
	}
}

// resumer is a body that reopens itself at the current offset when a read
// fails.
type resumer struct {
	c         *Client
	ctx       context.Context
	url       string
	body      io.ReadCloser
	off, size int64
	validator string
	resumes   int
}

func (r *resumer) Read(p []byte) (int, error) {
	for {
		n, err := r.body.Read(p)
		r.off += int64(n)
		complete := r.size < 0 || r.off >= r.size
		if n > 0 {
			if err == io.EOF && complete {
				return n, io.EOF
			}
			return n, nil // a short body or an error: the next call resumes
		}
		switch {
		case err == nil:
			return 0, nil
		case err == io.EOF && complete:
			return 0, io.EOF
		case r.ctx.Err() != nil:
			return 0, r.ctx.Err()
		case r.resumes >= r.c.retries():
			return 0, fmt.Errorf("%s: broken %d times, giving up at byte %d: %w", r.url, r.resumes, r.off, err)
		}
		r.resumes++
		r.c.logRetry(r.url, r.resumes-1, fmt.Errorf("transfer broken at byte %d: %w", r.off, err))
		r.body.Close()
		if err := r.c.wait(r.ctx, r.resumes-1); err != nil {
			return 0, err
		}
		resp, derr := r.c.do(r.ctx, r.url, r.off, r.validator)
		if derr != nil {
			return 0, fmt.Errorf("transfer broken at byte %d (%w), and resuming failed: %w", r.off, err, derr)
		}
		r.body = resp.Body
	}
}

func (r *resumer) Close() error { return r.body.Close() }
