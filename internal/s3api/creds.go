package s3api

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Credentials sign requests; the zero value sends them unsigned
// (anonymous, for public buckets).
type Credentials struct {
	AccessKey, SecretKey, SessionToken string
}

// Anonymous says whether requests go unsigned.
func (c Credentials) Anonymous() bool { return c.AccessKey == "" }

// ErrCredentialsFile is a shared credentials file that cannot be used.
var ErrCredentialsFile = errors.New("bad shared credentials file")

// errNoProfile: the file has no section for the profile.
var errNoProfile = errors.New("no profile")

// maxCredentialsFile is the most of a credentials file that is read.
const maxCredentialsFile = 1 << 20

// Lookup finds credentials the way the AWS tools do: AWS_ACCESS_KEY_ID
// and AWS_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY and AWS_SECRET_KEY) with
// AWS_SESSION_TOKEN, else the profile AWS_PROFILE (default "default") of
// the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
// ~/.aws/credentials). Neither: anonymous. A file that exists but
// cannot be read or parsed, a profile without both keys, and an
// AWS_PROFILE the file does not have are errors.
func Lookup(getenv func(string) string) (Credentials, error) {
	first := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	env := Credentials{
		AccessKey:    first("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"),
		SecretKey:    first("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"),
		SessionToken: getenv("AWS_SESSION_TOKEN"),
	}
	if env.AccessKey != "" && env.SecretKey != "" {
		return env, nil
	}
	path := getenv("AWS_SHARED_CREDENTIALS_FILE")
	if path == "" {
		home := getenv("HOME")
		if home == "" {
			return Credentials{}, nil
		}
		path = filepath.Join(home, ".aws", "credentials")
	}
	profile, explicit := getenv("AWS_PROFILE"), true
	if profile == "" {
		profile, explicit = "default", false
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Credentials{}, nil
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: %w", ErrCredentialsFile, err)
	}
	defer f.Close()
	cr, err := parseCredentials(io.LimitReader(f, maxCredentialsFile), profile)
	if errors.Is(err, errNoProfile) && !explicit {
		return Credentials{}, nil // a file for other profiles only
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", path, err)
	}
	return cr, nil
}

// parseCredentials reads profile's keys from an INI credentials file:
// [profile] sections, key = value lines, # and ; comments.
func parseCredentials(r io.Reader, profile string) (Credentials, error) {
	var cr Credentials
	found := false
	section := ""
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "" || s[0] == '#' || s[0] == ';':
			continue
		case s[0] == '[':
			if !strings.HasSuffix(s, "]") {
				return cr, fmt.Errorf("%w: line %d: unterminated section", ErrCredentialsFile, line)
			}
			section = strings.TrimSpace(s[1 : len(s)-1])
			found = found || section == profile
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return cr, fmt.Errorf("%w: line %d: not key = value", ErrCredentialsFile, line)
		}
		if section != profile {
			continue
		}
		switch strings.TrimSpace(k) {
		case "aws_access_key_id":
			cr.AccessKey = strings.TrimSpace(v)
		case "aws_secret_access_key":
			cr.SecretKey = strings.TrimSpace(v)
		case "aws_session_token":
			cr.SessionToken = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return cr, fmt.Errorf("%w: %w", ErrCredentialsFile, err)
	}
	if !found {
		return Credentials{}, fmt.Errorf("%w: %w %q", ErrCredentialsFile, errNoProfile, profile)
	}
	if cr.AccessKey == "" || cr.SecretKey == "" {
		return Credentials{}, fmt.Errorf("%w: profile %q lacks aws_access_key_id or aws_secret_access_key", ErrCredentialsFile, profile)
	}
	return cr, nil
}
