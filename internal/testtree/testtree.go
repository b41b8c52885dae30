package testtree

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Tools is the directory of the shared tools (make-test-stream, ss-validate).
func Tools(t testing.TB) string {
	t.Helper()
	if v := os.Getenv("MEPHSTORE_SHARED_TOOLS"); v != "" {
		return v
	}
	// Beside the clone (…/main and …/shared), or where the project's
	// machines keep it.
	_, file, _, _ := runtime.Caller(0)
	for _, dir := range []string{filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "tools"), "/work/shared/tools"} {
		if _, err := os.Stat(filepath.Join(dir, "make-test-stream")); err == nil {
			return dir
		}
	}
	t.Fatal("shared tools (make-test-stream, ss-validate) not found beside the clone: set MEPHSTORE_SHARED_TOOLS")
	return ""
}

// Keys is a throwaway signing identity: a GnuPG home and its public keyring.
type Keys struct {
	Home    string
	Keyring string
	UID     string
}

var (
	keysMu sync.Mutex
	keys   = map[string]*Keys{}
	bases  []string
)

// Cleanup stops the gpg-agent that signing started in each GnuPG home made
// by KeysFor and removes the homes. Call it from TestMain after m.Run.
func Cleanup() {
	keysMu.Lock()
	defer keysMu.Unlock()
	for _, k := range keys {
		exec.Command("gpgconf", "--homedir", k.Home, "--kill", "gpg-agent").Run()
	}
	for _, b := range bases {
		os.RemoveAll(b)
	}
	keys, bases = map[string]*Keys{}, nil
}

// KeysFor returns the identity called name, created once per test binary
// (key generation is the slow part of signing).
func KeysFor(t testing.TB, name string) *Keys {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k := keys[name]; k != nil {
		return k
	}
	base, err := os.MkdirTemp("", "mephstore-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	bases = append(bases, base)
	k := &Keys{Home: filepath.Join(base, "gnupg"), Keyring: filepath.Join(base, "keyring.gpg"), UID: name + " <" + name + "@example.invalid>"}
	os.Mkdir(k.Home, 0o700)
	// A tiny tree signed with the new key also writes its keyring.
	generate(t, filepath.Join(base, "seed"), k, "--keyring-out", k.Keyring)
	keys[name] = k
	return k
}

func generate(t testing.TB, out string, k *Keys, args ...string) {
	t.Helper()
	a := []string{filepath.Join(Tools(t), "make-test-stream"), "--out", out}
	if k != nil {
		// make-test-stream signs with the key of this uid (making it once).
		a = append(a, "--sign", "--gnupghome", k.Home, "--uid", k.UID)
	}
	cmd := exec.Command("python3", append(a, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-test-stream %v: %v\n%s", args, err, b)
	}
}

// Make writes a tree to a new temp directory and returns it. With k, the
// tree is signed by k's key.
func Make(t testing.TB, k *Keys, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "tree")
	generate(t, out, k, args...)
	return out
}

// Validate runs the shared ss-validate on a published stream (a directory
// or URL); with a keyring it checks signatures and requires the detached
// ones.
func Validate(t testing.TB, target, keyring string, args ...string) {
	t.Helper()
	a := []string{filepath.Join(Tools(t), "ss-validate"), "-q"}
	if keyring != "" {
		a = append(a, "--keyring", keyring, "--require-detached")
	}
	out, err := exec.Command("python3", append(append(a, args...), target)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ss-validate %s: %v\n%s", target, err, out)
	}
}
