package s3api

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// The example of Amazon's Signature Version 4 documentation for S3 (GET
// object with a range): the same inputs must give its signature.
func TestSignV4DocumentedExample(t *testing.T) {
	h := http.Header{}
	h.Set("Range", "bytes=0-9")
	cr := Credentials{AccessKey: "AKIAIOSFODNN7EXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
	at := time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)
	signV4(h, "GET", "examplebucket.s3.amazonaws.com", "/test.txt", "", emptySHA256, cr, "us-east-1", at)
	want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	if got := h.Get("Authorization"); got != want {
		t.Fatalf("Authorization:\n got %s\nwant %s", got, want)
	}
	if h.Get("X-Amz-Date") != "20130524T000000Z" || h.Get("X-Amz-Content-Sha256") != emptySHA256 {
		t.Fatalf("headers: %v", h)
	}
}

func TestURIEncode(t *testing.T) {
	for _, c := range []struct {
		in    string
		slash bool
		want  string
	}{
		{"a/b c", false, "a/b%20c"},
		{"a/b c", true, "a%2Fb%20c"},
		{"AZaz09-_.~", true, "AZaz09-_.~"},
		{"x+y=z&", false, "x%2By%3Dz%26"},
		{"ሴ", false, "%E1%88%B4"},
	} {
		if got := uriEncode(c.in, c.slash); got != c.want {
			t.Errorf("uriEncode(%q, %v) = %q, want %q", c.in, c.slash, got, c.want)
		}
	}
}

func TestCanonicalQuery(t *testing.T) {
	q := url.Values{"uploads": {""}, "prefix": {"pool/a b"}, "list-type": {"2"}}
	if got, want := canonicalQuery(q), "list-type=2&prefix=pool%2Fa%20b&uploads="; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
