package publish

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A web server running as another user must be able to read every
// published file and walk every directory, whatever the umask of the
// publishing process.
func TestPublishedModesIgnoreUmask(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	f := newFixture(t, "2", "daily")
	f.publish(t, "daily", true)
	n := 0
	filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(f.root, p)
		if strings.HasPrefix(d.Name(), ".") && rel != "." {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // locks: never served
		}
		fi, _ := d.Info()
		mode := fi.Mode()
		switch {
		case mode.IsDir() && mode.Perm() != 0o755:
			t.Errorf("%s: directory mode %v, want 0755", rel, mode.Perm())
		case mode.IsRegular() && strings.HasPrefix(rel, "data/") && mode.Perm() != 0o444:
			t.Errorf("%s: data file mode %v, want 0444 (the pool's blob)", rel, mode.Perm())
		case mode.IsRegular() && !strings.HasPrefix(rel, "data/") && mode.Perm() != 0o644:
			t.Errorf("%s: mode %v, want 0644", rel, mode.Perm())
		}
		n++
		return nil
	})
	if n < 10 {
		t.Fatalf("walked %d entries", n)
	}
	ssValidate(t, filepath.Join(f.root, "daily"), f.keyring)
}
