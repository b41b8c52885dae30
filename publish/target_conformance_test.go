package publish_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/publish"
	"github.com/mephstore/mephstore/publish/targettest"
)

// TestDirTargetConformance runs the publish target's contract on the
// directory target, with the local pool as the blob store (same file
// system: data files are hard links).
func TestDirTargetConformance(t *testing.T) {
	targettest.Run(t, func(t *testing.T) targettest.Fixture {
		dir := t.TempDir()
		store := filepath.Join(dir, "store")
		if err := cas.InitWith(store, 0); err != nil {
			t.Fatal(err)
		}
		s, err := cas.Open(store, cas.Options{Wait: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		open := func() publish.Target {
			tg, err := publish.NewDirTarget(filepath.Join(dir, "pub"))
			if err != nil {
				t.Fatal(err)
			}
			return tg
		}
		return targettest.Fixture{Target: open(), Blobs: s.Blobs(), Reopen: open}
	})
}
