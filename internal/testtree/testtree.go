package testtree

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/streamgen"
)

// Keys is a throwaway signing identity: its secret key (armoured) and
// public keyring (binary, as gpgv and MAAS read it).
type Keys struct {
	Signer    *pgp.Signer
	SecretKey string
	Keyring   string
	UID       string
}

var (
	keysMu sync.Mutex
	keys   = map[string]*Keys{}
	bases  []string
)

// Cleanup removes the key directories made by KeysFor. Call it from
// TestMain after m.Run.
func Cleanup() {
	keysMu.Lock()
	defer keysMu.Unlock()
	for _, b := range bases {
		os.RemoveAll(b)
	}
	keys, bases = map[string]*Keys{}, nil
}

// KeysFor returns the identity called name, made once per test binary.
func KeysFor(t testing.TB, name string) *Keys {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k := keys[name]; k != nil {
		return k
	}
	base, err := os.MkdirTemp("", "mephstore-keys-")
	if err != nil {
		t.Fatal(err)
	}
	bases = append(bases, base)
	s, err := pgp.GenerateKey(name, name+"@example.invalid")
	if err != nil {
		t.Fatal(err)
	}
	k := &Keys{Signer: s, SecretKey: filepath.Join(base, "signing-key.asc"), Keyring: filepath.Join(base, "keyring.gpg"), UID: name + " <" + name + "@example.invalid>"}
	write := func(p string, fn func(f *os.File) error) {
		f, err := os.Create(p)
		if err == nil {
			err = fn(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	write(k.SecretKey, func(f *os.File) error { return s.WriteSecret(f) })
	write(k.Keyring, func(f *os.File) error { return s.WritePublic(f, false) })
	keys[name] = k
	return k
}

// Make writes a tree to a new temp directory and returns it. args are the
// flags of make-test-stream (streamgen.ParseArgs). With k, the tree is
// signed by k's key.
func Make(t testing.TB, k *Keys, args ...string) string {
	t.Helper()
	spec, err := streamgen.ParseArgs(args)
	if err != nil {
		t.Fatalf("test tree %v: %v", args, err)
	}
	if k != nil {
		spec.Signer = k.Signer
	}
	out := filepath.Join(t.TempDir(), "tree")
	if _, err := streamgen.Write(out, spec); err != nil {
		t.Fatalf("test tree %v: %v", args, err)
	}
	return out
}
