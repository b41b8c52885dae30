// Package testref finds the reference tools that some tests cross-check
// mephstore against: the shared test tools (ss-validate) and the pinned
// maas-images and python-simplestreams of the project's shared directory.
// They sit beside a clone (../shared) or where MEPHSTORE_SHARED points.
// When they are absent the cross-checks skip, saying so: nothing else in
// the test suite needs them.
package testref

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Shared returns the shared directory, or "" when there is none.
func Shared() string {
	if v := os.Getenv("MEPHSTORE_SHARED"); v != "" {
		return v
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared")
	if _, err := os.Stat(filepath.Join(dir, "reference")); err == nil {
		return filepath.Clean(dir)
	}
	return ""
}

// Dir returns the shared directory's sub-directory rel (reference/maas-images,
// tools), or skips the test when it is absent.
func Dir(t testing.TB, rel string) string {
	t.Helper()
	s := Shared()
	if s == "" {
		t.Skip("cross-check skipped: no shared directory beside the clone (set MEPHSTORE_SHARED to run it)")
	}
	d := filepath.Join(s, rel)
	if _, err := os.Stat(d); err != nil {
		t.Skipf("cross-check skipped: %s is absent", d)
	}
	return d
}

// Python returns a python3 that imports every module named, preferring
// Debian's (/usr/bin/python3, where apt installs python3-yaml and the
// like), or skips the test.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	probe := "import " + strings.Join(append([]string{"sys"}, modules...), ", ")
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", probe).Run() == nil {
			return py
		}
	}
	t.Skipf("cross-check skipped: no python3 with %v (scripts/deps installs them)", modules)
	return ""
}
