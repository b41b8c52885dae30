package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// ErrHTTP is wrapped by errors for HTTP statuses that are not retried.
var ErrHTTP = errors.New("http error")

// Client downloads with retries.
type Client struct {
	HTTP    *http.Client
	Retries int           // attempts after the first; 0 means 5
	Backoff time.Duration // first wait between attempts, doubled each time; 0 means 500ms
	Log     *slog.Logger
}

func (c *Client) retries() int {
	if c.Retries > 0 {
		return c.Retries
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
	return http.DefaultClient
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
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
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
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last = fmt.Errorf("%s: %w", url, err)
			c.logRetry(url, attempt, last)
			continue
		}
		want := http.StatusOK
		if off > 0 {
			want = http.StatusPartialContent
		}
		if resp.StatusCode == want {
			return resp, nil
		}
		resp.Body.Close()
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
			return 0, derr
		}
		r.body = resp.Body
	}
}

func (r *resumer) Close() error { return r.body.Close() }
