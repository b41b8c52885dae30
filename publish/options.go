package publish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/pgp"
)

// Choice is what the command line says about where and how to publish;
// what it leaves out is taken from what the store remembers.
type Choice struct {
	Root           string // publish root; "": the remembered one
	SignKey        string // secret key file; "": the remembered one
	PassphraseFile string // file holding the key's passphrase
	Passphrase     string // the passphrase (from the environment), when no file
	NoSign         bool
}

// ErrMissingChoice is wrapped when neither the command line nor the store
// says where or how to publish.
var ErrMissingChoice = errors.New("missing")

// Resolve makes publish Options from c and the store's remembered
// settings, reading the signing key.
func Resolve(ctx context.Context, s *cas.Store, c Choice) (Options, error) {
	if c.NoSign && c.SignKey != "" {
		return Options{}, fmt.Errorf("--sign-key and --no-sign do not go together: %w", ErrMissingChoice)
	}
	saved, err := s.ReadSettings(ctx, SettingRoot, SettingSignKey)
	if err != nil {
		return Options{}, err
	}
	root := cmp(c.Root, saved[0])
	if root == "" {
		return Options{}, fmt.Errorf("no publish root yet: give --publish-root DIR (it is remembered): %w", ErrMissingChoice)
	}
	o := Options{Root: root}
	if c.NoSign {
		return o, nil
	}
	key := cmp(c.SignKey, saved[1])
	if key == "" {
		return o, fmt.Errorf("give --sign-key FILE (it is remembered) or --no-sign; 'mephstore key generate' makes a key: %w", ErrMissingChoice)
	}
	pass := []byte(c.Passphrase)
	if c.PassphraseFile != "" {
		b, err := os.ReadFile(c.PassphraseFile)
		if err != nil {
			return o, err
		}
		pass = []byte(strings.TrimRight(string(b), "\r\n"))
	}
	if o.Signer, err = pgp.ReadSigningKey(key, pass); err != nil {
		return o, err
	}
	o.SignKeyPath, err = filepath.Abs(key)
	return o, err
}

// cmp is the first of a and b that is not empty.
func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
