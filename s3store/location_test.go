package s3store

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRoot(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	for _, tc := range []struct {
		in, def, bucket, prefix, endpoint string
		bad                               bool
	}{
		{in: "s3://mirror/www", def: "http://h:1", bucket: "mirror", prefix: "www", endpoint: "http://h:1"},
		{in: "s3://mirror/a/b/", def: "https://h", bucket: "mirror", prefix: "a/b", endpoint: "https://h"},
		{in: "s3://mirror?endpoint=http://h:2", bucket: "mirror", endpoint: "http://h:2"},
		{in: "s3://mirror/www?endpoint=http://h:2", def: "http://x", bucket: "mirror", prefix: "www", endpoint: "http://h:2"},
		{in: "s3://mirror/www", bad: true},                         // no endpoint anywhere
		{in: "s3://mirror/../x", def: "http://h", bad: true},       // leaves the prefix
		{in: "s3://mirror/a//b", def: "http://h", bad: true},       // empty segment
		{in: "s3://Mirror/a", def: "http://h", bad: true},          // not a bucket name
		{in: "s3://m/a", def: "http://h", bad: true},               // too short
		{in: "/srv/www", def: "http://h", bad: true},               // not s3://
		{in: "s3://mirror/a?region=x", def: "http://h", bad: true}, // unknown query
		{in: "s3://mirror/a", def: "ftp://h", bad: true},           // not http(s)
		{in: "s3://mirror/a", def: "http://h/path", bad: true},     // endpoint with a path
		{in: "s3://mirror/a/./b", def: "http://h", bad: true},      // dot segment
		{in: "s3://mirror/a\x00b", def: "http://h", bad: true},     // control character
	} {
		cfg, err := ParseRoot(tc.in, tc.def)
		if tc.bad {
			if !errors.Is(err, ErrBadLocation) {
				t.Errorf("%q: %+v %v, want ErrBadLocation", tc.in, cfg, err)
			}
			continue
		}
		if err != nil || cfg.Bucket != tc.bucket || cfg.Prefix != tc.prefix || cfg.Endpoint != tc.endpoint {
			t.Errorf("%q: %+v %v", tc.in, cfg, err)
		}
	}
}

func FuzzParseRoot(f *testing.F) {
	for _, s := range []string{"s3://mirror/www", "s3://mirror/a/../b?endpoint=http://h", "s3://x", "s3://mirror/a//b/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := ParseRoot(s, "http://127.0.0.1:1")
		if err != nil {
			return
		}
		if strings.ContainsAny(cfg.Prefix, "\x00\\") {
			t.Fatalf("%q: accepted prefix %q", s, cfg.Prefix)
		}
		for _, seg := range strings.Split(cfg.Prefix, "/") {
			if cfg.Prefix != "" && (seg == "" || seg == "." || seg == "..") {
				t.Fatalf("%q: accepted prefix %q", s, cfg.Prefix)
			}
		}
		if !bucketName().MatchString(cfg.Bucket) {
			t.Fatalf("%q: accepted bucket %q", s, cfg.Bucket)
		}
	})
}
