package s3api

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func answer(status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
}

func TestErrorOf(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		object bool
		code   string
		retry  bool
	}{
		{"S3 error document", 403, `<?xml version="1.0"?><Error><Code>SignatureDoesNotMatch</Code><Message>no
			match</Message></Error>`, true, "SignatureDoesNotMatch", false},
		{"HEAD of a missing object", 404, "", true, "NoSuchKey", false},
		{"HEAD of a missing bucket", 404, "", false, "NoSuchBucket", false},
		{"not XML", 502, "<html>bad gateway</html>", true, "BadGateway", true},
		{"slow down", 503, `<Error><Code>SlowDown</Code></Error>`, true, "SlowDown", true},
		{"too many requests", 429, "", true, "TooManyRequests", true},
		{"precondition", 412, "", true, "PreconditionFailed", false},
		{"redirect", 301, "", true, "Redirect", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := errorOf(answer(c.status, c.body), c.object)
			var e *Error
			if !errors.As(err, &e) || e.Code != c.code || e.Status != c.status {
				t.Fatalf("got %#v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error of more than one line: %q", err)
			}
			if retryable(err) != c.retry {
				t.Fatalf("retryable = %v", !c.retry)
			}
		})
	}
}

// A 200 whose body is an <Error> (S3 does this for copies and
// completions) is that error; a body over the limit is refused.
func TestReadXML(t *testing.T) {
	var v struct{ ETag string }
	err := readXML(answer(200, `<Error><Code>InternalError</Code><Message>try again</Message></Error>`), &v)
	var e *Error
	if !errors.As(err, &e) || e.Code != "InternalError" || !retryable(err) {
		t.Fatalf("200 with an error body: %v", err)
	}
	if err := readXML(answer(200, `<CopyObjectResult><ETag>"abc"</ETag></CopyObjectResult>`), &v); err != nil || v.ETag != `"abc"` {
		t.Fatalf("copy result: %v %q", err, v.ETag)
	}
	big := &http.Response{StatusCode: 200, Body: io.NopCloser(io.LimitReader(zeros{}, maxXMLBody+10))}
	if err := readXML(big, &v); !errors.Is(err, ErrBadAnswer) || !strings.Contains(err.Error(), "more than") || retryable(err) {
		t.Fatalf("endless body: %v", err)
	}
	if err := readXML(answer(200, `<a><b>`), &v); !errors.Is(err, ErrBadAnswer) || retryable(err) {
		t.Fatalf("truncated XML: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestListPage(t *testing.T) {
	body := `<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>tok2</NextContinuationToken>
<EncodingType>url</EncodingType>
<Contents><Key>pool/a%20b</Key><Size>3</Size><ETag>"e1"</ETag><LastModified>2026-12-07T10:00:00.000Z</LastModified></Contents>
<CommonPrefixes><Prefix>pool/dir%2B/</Prefix></CommonPrefixes></ListBucketResult>`
	var res listResult
	if err := xml.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	p, err := res.page("tok1")
	if err != nil {
		t.Fatal(err)
	}
	want := ObjectInfo{Key: "pool/a b", Size: 3, ETag: "e1", LastModified: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	if len(p.Objects) != 1 || p.Objects[0] != want || len(p.Prefixes) != 1 || p.Prefixes[0] != "pool/dir+/" || p.Next != "tok2" {
		t.Fatalf("page %+v", p)
	}
	// A server that says "more" with the same token would loop forever.
	if _, err := res.page("tok2"); err == nil {
		t.Fatal("a truncated page repeating its token was accepted")
	}
	res.Contents[0].Size = -1
	if _, err := res.page("tok1"); err == nil {
		t.Fatal("a negative size was accepted")
	}
}

// FuzzListAnswer: whatever a server sends as a listing, decoding it ends
// with a page or an error, never a panic or a page that loops.
func FuzzListAnswer(f *testing.F) {
	f.Add(`<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>1</Size></Contents></ListBucketResult>`, "")
	f.Add(`<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken><EncodingType>url</EncodingType><Contents><Key>%zz</Key></Contents></ListBucketResult>`, "t")
	f.Add(`<Error><Code>x</Code></Error>`, "")
	f.Fuzz(func(t *testing.T, body, token string) {
		var res listResult
		if readXML(answer(200, body), &res) != nil {
			return
		}
		p, err := res.page(token)
		if err == nil && res.IsTruncated && (p.Next == "" || p.Next == token) {
			t.Fatalf("a truncated page without a new token: %+v", p)
		}
	})
}

// The wait between attempts doubles from the backoff up to maxBackoff,
// with jitter in its upper half, whatever the number of attempts.
func TestWait(t *testing.T) {
	c := &Client{backoff: 100 * time.Millisecond}
	for _, w := range []struct {
		attempt int
		max     time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {4, 800 * time.Millisecond}, {7, maxBackoff}, {200, maxBackoff}} {
		for range 20 {
			if d := c.wait(w.attempt); d < w.max/2 || d > w.max {
				t.Fatalf("attempt %d: waited %v, want within [%v, %v]", w.attempt, d, w.max/2, w.max)
			}
		}
	}
}
