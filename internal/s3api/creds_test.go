package s3api

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "credentials")
	os.WriteFile(file, []byte("# comment\n[default]\naws_access_key_id = AKD\naws_secret_access_key=SKD\n\n"+
		"[ops]\n; another\naws_access_key_id=AKO\naws_secret_access_key = SKO\naws_session_token = TOK\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, "home", ".aws"), 0o700)
	os.WriteFile(filepath.Join(dir, "home", ".aws", "credentials"), []byte("[default]\naws_access_key_id=AKH\naws_secret_access_key=SKH\n"), 0o600)
	for _, c := range []struct {
		name string
		env  map[string]string
		want Credentials
		err  error
	}{
		{"environment first", map[string]string{"AWS_ACCESS_KEY_ID": "AKE", "AWS_SECRET_ACCESS_KEY": "SKE", "AWS_SESSION_TOKEN": "T", "AWS_SHARED_CREDENTIALS_FILE": file},
			Credentials{"AKE", "SKE", "T"}, nil},
		{"old variable names", map[string]string{"AWS_ACCESS_KEY": "AKE", "AWS_SECRET_KEY": "SKE"}, Credentials{"AKE", "SKE", ""}, nil},
		{"half the environment: the file", map[string]string{"AWS_ACCESS_KEY_ID": "AKE", "AWS_SHARED_CREDENTIALS_FILE": file}, Credentials{"AKD", "SKD", ""}, nil},
		{"a profile", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "ops"}, Credentials{"AKO", "SKO", "TOK"}, nil},
		{"home's file", map[string]string{"HOME": filepath.Join(dir, "home")}, Credentials{"AKH", "SKH", ""}, nil},
		{"no file: anonymous", map[string]string{"HOME": filepath.Join(dir, "nowhere")}, Credentials{}, nil},
		{"nothing: anonymous", map[string]string{}, Credentials{}, nil},
		{"a profile the file lacks", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "nope"}, Credentials{}, ErrCredentialsFile},
		{"a directory for a file", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": dir}, Credentials{}, ErrCredentialsFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Lookup(func(k string) string { return c.env[k] })
			if !errors.Is(err, c.err) || got != c.want {
				t.Fatalf("got %+v, %v; want %+v, %v", got, err, c.want, c.err)
			}
		})
	}
}

func TestParseCredentials(t *testing.T) {
	for _, c := range []struct {
		name, text string
		want       Credentials
		err        string
	}{
		{"plain", "[default]\naws_access_key_id=A\naws_secret_access_key=S\n", Credentials{"A", "S", ""}, ""},
		{"other profile only", "[x]\naws_access_key_id=A\naws_secret_access_key=S\n", Credentials{}, "no profile"},
		{"missing secret", "[default]\naws_access_key_id=A\n", Credentials{}, "lacks"},
		{"unterminated section", "[default\naws_access_key_id=A\n", Credentials{}, "line 1: unterminated section"},
		{"not key = value", "[default]\njunk\n", Credentials{}, "line 2: not key = value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseCredentials(strings.NewReader(c.text), "default")
			if c.err == "" && (err != nil || got != c.want) {
				t.Fatalf("got %+v, %v", got, err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrCredentialsFile)) {
				t.Fatalf("got %+v, %v; want an error with %q", got, err, c.err)
			}
		})
	}
}
