package s3api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Options configure a Client.
type Options struct {
	Endpoint  string // http://host:port or https://host; requests are path-style
	Region    string // "" means us-east-1
	Creds     Credentials
	Transport http.RoundTripper // nil: http.DefaultTransport
	Retries   int               // attempts per request; < 1 means 1
	Backoff   time.Duration     // the wait before the second attempt, doubling; 0: 100ms
}

// Client sends S3 requests to one endpoint.
type Client struct {
	base    *url.URL
	region  string
	creds   Credentials
	hc      *http.Client
	retries int
	backoff time.Duration
}

// Limits on what an answer may make this client read.
const (
	maxErrorBody = 64 << 10 // an <Error> document
	maxXMLBody   = 16 << 20 // a listing page or a result document
	maxBackoff   = 5 * time.Second
)

// New makes a client without talking to the server.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("endpoint %q: want http://host[:port] or https://host[:port]", o.Endpoint)
	}
	c := &Client{
		base: &url.URL{Scheme: u.Scheme, Host: u.Host}, region: o.Region, creds: o.Creds,
		retries: max(o.Retries, 1), backoff: o.Backoff,
	}
	if c.region == "" {
		c.region = "us-east-1"
	}
	if c.backoff <= 0 {
		c.backoff = 100 * time.Millisecond
	}
	c.hc = &http.Client{
		Transport: o.Transport,
		// S3 answers a wrong region or endpoint with a redirect: report
		// it instead of sending the signed request elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Endpoint is the server's URL.
func (c *Client) Endpoint() string { return c.base.String() }

// Error is an error answer of the server.
type Error struct {
	Status  int    // HTTP status
	Code    string // S3's error code, or one derived from the status
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status)
	}
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Message, e.Status)
}

// ErrBadAnswer is a 2xx answer whose body is not what S3 sends: too
// large, or not well-formed XML of the expected shape. It is not
// retried.
var ErrBadAnswer = errors.New("bad answer from the server")

// request is one S3 request; its body is in memory so that any attempt
// can send it again.
type request struct {
	method      string
	bucket, key string
	query       url.Values
	header      http.Header
	body        []byte
	unsigned    bool   // UNSIGNED-PAYLOAD instead of the body's sha256
	sum         string // the body's sha256 (hex), if the caller knows it
}

// do sends r, retrying what may succeed later, and returns a response
// with a 2xx status or an error. With v nil the response's body is the
// caller's to close; else the body is decoded into v (readXML) as part
// of the attempt, and closed.
func (c *Client) do(ctx context.Context, r request, v any) (*http.Response, error) {
	if r.sum == "" && len(r.body) > 0 && !r.unsigned && !c.creds.Anonymous() {
		s := sha256.Sum256(r.body) // once, whatever the attempts
		r.sum = hex.EncodeToString(s[:])
	}
	for attempt := 1; ; attempt++ {
		resp, err := c.once(ctx, r)
		switch {
		case err == nil && resp.StatusCode/100 != 2:
			err = errorOf(resp, r.key != "")
			resp.Body.Close()
		case err == nil && v != nil:
			err = readXML(resp, v)
		}
		if err == nil {
			return resp, nil
		}
		if attempt >= c.retries || ctx.Err() != nil || !retryable(err) {
			return nil, err
		}
		t := time.NewTimer(c.wait(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// wait is the pause after the attempt-th failure: the backoff doubled
// per attempt up to maxBackoff, jittered (writers that failed together
// do not retry in step).
func (c *Client) wait(attempt int) time.Duration {
	d := c.backoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// once sends r one time.
func (c *Client) once(ctx context.Context, r request) (*http.Response, error) {
	path := "/" + uriEncode(r.bucket, true)
	if r.key != "" {
		path += "/" + uriEncode(r.key, false)
	}
	query := canonicalQuery(r.query)
	u := *c.base
	u.Path, u.RawPath, u.RawQuery = pathUnescaped(r.bucket, r.key), path, query
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if !c.creds.Anonymous() {
		payload := emptySHA256
		switch {
		case r.unsigned:
			payload = unsignedPayload
		case len(r.body) > 0:
			payload = r.sum
		}
		signV4(req.Header, r.method, u.Host, path, query, payload, c.creds, c.region, time.Now())
	}
	return c.hc.Do(req)
}

func pathUnescaped(bucket, key string) string {
	if key == "" {
		return "/" + bucket
	}
	return "/" + bucket + "/" + key
}

// retryable says whether a failed request may succeed if sent again: a
// network failure (the server restarting, a stall), a server-side error,
// or the server asking to slow down.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrBadAnswer) {
		return false // the same server would say the same
	}
	var e *Error
	if !errors.As(err, &e) {
		return true
	}
	switch e.Code {
	case "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed":
		return true
	}
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// errorOf reads an error answer: S3's <Error> document when the body is
// one, else a code derived from the status (HEAD answers have no body).
func errorOf(resp *http.Response, object bool) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return errorIn(resp, body, object)
}

// errorIn is the error a status and its body (read already) say.
func errorIn(resp *http.Response, body []byte, object bool) error {
	e := &Error{Status: resp.StatusCode}
	var doc struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
		Message string   `xml:"Message"`
	}
	if xml.Unmarshal(body, &doc) == nil && doc.Code != "" {
		e.Code, e.Message = doc.Code, oneLine(doc.Message)
		return e
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		e.Code = "NoSuchBucket"
		if object {
			e.Code = "NoSuchKey"
		}
	case http.StatusForbidden:
		e.Code = "AccessDenied"
	case http.StatusPreconditionFailed:
		e.Code = "PreconditionFailed"
	case http.StatusMovedPermanently, http.StatusTemporaryRedirect:
		e.Code = "Redirect"
		e.Message = "to " + oneLine(resp.Header.Get("Location")) + " (wrong endpoint or region?)"
	default:
		e.Code = strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "")
	}
	return e
}

// oneLine keeps a server's message to one short line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// rootElement is the name of a document's first element (read without
// decoding the rest).
func rootElement(body []byte) (string, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			return "", err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local, nil
		}
	}
}

// readXML decodes a 2xx answer's XML body into v. A body whose root is
// <Error> is the error it holds (copies and completions answer 200 and
// fail in the body).
func readXML(resp *http.Response, v any) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxXMLBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxXMLBody {
		return fmt.Errorf("%w: more than %d bytes", ErrBadAnswer, maxXMLBody)
	}
	root, err := rootElement(body)
	if err != nil {
		return fmt.Errorf("%w: malformed XML: %w", ErrBadAnswer, err)
	}
	if root == "Error" {
		return errorIn(resp, body, true)
	}
	if err := xml.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: malformed XML: %w", ErrBadAnswer, err)
	}
	return nil
}
