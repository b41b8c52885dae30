package s3store

import (
	"context"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/internal/s3api"
	"github.com/mephstore/mephstore/internal/s3test"
)

// testBucket starts a real server with a fresh bucket and opens it.
func testBucket(t *testing.T, prefix string) (*s3test.Server, *Bucket) {
	t.Helper()
	srv := s3test.Start(t)
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = "b-" + strings.Trim(name, "-")
	srv.MakeBucket(name)
	b, err := Open(context.Background(), Config{
		Endpoint: srv.Endpoint(), Bucket: name, Prefix: prefix,
		Creds: &s3api.Credentials{AccessKey: s3test.AccessKey, SecretKey: s3test.SecretKey},
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv, b
}

// noUploads fails when an unfinished multipart upload is left.
func noUploads(t *testing.T, b *Bucket) {
	t.Helper()
	n := 0
	if err := b.eachUpload(context.Background(), "", func(s3api.Upload) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d multipart uploads left open", n)
	}
}
