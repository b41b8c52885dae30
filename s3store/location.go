package s3store

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
)

// Scheme is how a store or publish root on a bucket is written.
const Scheme = "s3://"

// IsURL says whether s names a bucket location (s3://bucket/prefix).
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

var bucketName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`) })

// ParseURL splits s3://bucket/some/prefix into its bucket and its prefix
// ("some/prefix", no leading or trailing slash). It refuses names S3
// refuses and prefixes with empty, "." or ".." segments.
func ParseURL(s string) (bucket, prefix string, err error) {
	if !IsURL(s) {
		return "", "", fmt.Errorf("location %q: %w (want s3://bucket/prefix)", s, ErrBadLocation)
	}
	rest := strings.TrimPrefix(s, Scheme)
	bucket, prefix, _ = strings.Cut(rest, "/")
	if !bucketName().MatchString(bucket) || strings.Contains(bucket, "..") {
		return "", "", fmt.Errorf("location %q: bucket name %q: %w", s, bucket, ErrBadLocation)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return bucket, "", nil
	}
	for _, seg := range strings.Split(prefix, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", fmt.Errorf("location %q: prefix %q: %w", s, prefix, ErrBadLocation)
		}
	}
	if path.Clean(prefix) != prefix || strings.ContainsFunc(prefix, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "", "", fmt.Errorf("location %q: prefix %q: %w", s, prefix, ErrBadLocation)
	}
	return bucket, prefix, nil
}

// ParseRoot parses a publish root or store location with an optional
// endpoint query (s3://bucket/prefix?endpoint=URL); with none, the
// endpoint is def, else $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL.
func ParseRoot(s, def string) (Config, error) {
	loc, query, _ := strings.Cut(s, "?")
	bucket, prefix, err := ParseURL(loc)
	if err != nil {
		return Config{}, err
	}
	endpoint := def
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil || len(q) != 1 || q.Get("endpoint") == "" {
			return Config{}, fmt.Errorf("location %q: %w (the only query is endpoint=URL)", s, ErrBadLocation)
		}
		endpoint = q.Get("endpoint")
	}
	for _, env := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if endpoint == "" {
			endpoint = os.Getenv(env)
		}
	}
	if endpoint == "" {
		return Config{}, fmt.Errorf("location %q: %w (no endpoint: pass --endpoint or set AWS_ENDPOINT_URL)", s, ErrBadLocation)
	}
	if _, _, err := checkEndpoint(endpoint); err != nil {
		return Config{}, err
	}
	return Config{Endpoint: endpoint, Bucket: bucket, Prefix: prefix, Region: os.Getenv("AWS_REGION")}, nil
}

// checkEndpoint accepts http:// and https:// URLs with a host and no path.
func checkEndpoint(e string) (host string, secure bool, err error) {
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", false, fmt.Errorf("endpoint %q: %w (want http://host:port or https://host)", e, ErrBadLocation)
	}
	return u.Host, u.Scheme == "https", nil
}
