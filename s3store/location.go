package s3store

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// Scheme is how a store or publish root on a bucket is written.
const Scheme = "s3://"

// IsURL says whether s names a bucket location (s3://bucket/prefix).
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseURL splits s3://bucket/some/prefix into its bucket and its prefix
// ("some/prefix", no leading or trailing slash). It refuses names S3
// refuses and prefixes with empty, "." or ".." segments.
func ParseURL(s string) (bucket, prefix string, err error) {
	if !IsURL(s) {
		return "", "", fmt.Errorf("location %q: %w (want s3://bucket/prefix)", s, ErrBadLocation)
	}
	rest := strings.TrimPrefix(s, Scheme)
	bucket, prefix, _ = strings.Cut(rest, "/")
	if !bucketName.MatchString(bucket) || strings.Contains(bucket, "..") {
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
	if path.Clean(prefix) != prefix {
		return "", "", fmt.Errorf("location %q: prefix %q: %w", s, prefix, ErrBadLocation)
	}
	return bucket, prefix, nil
}

// checkEndpoint accepts http:// and https:// URLs with a host and no path.
func checkEndpoint(e string) (host string, secure bool, err error) {
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return "", false, fmt.Errorf("endpoint %q: %w (want http://host:port or https://host)", e, ErrBadLocation)
	}
	return u.Host, u.Scheme == "https", nil
}
