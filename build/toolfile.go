package build

import (
	"context"
	"fmt"
	"os"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/progress"
)

// ToolFile is a file a tool writes or a build reads by path (tar2sqfs's
// output, a downloaded source), staged into the store once written. Where
// the store's blob store offers cas.TempFiles it is the store's own temp
// file, moved into the pool with no copy; otherwise it is a file in the
// system's temp directory whose bytes are streamed into the store.
type ToolFile struct {
	Path  string
	store *cas.Store
	temp  *cas.Temp // with cas.TempFiles
}

// NewToolFile makes an empty tool file for store, whose blob store is
// blobs.
func NewToolFile(store *cas.Store, blobs cas.BlobStore) (*ToolFile, error) {
	if tf, ok := blobs.(cas.TempFiles); ok {
		t, err := tf.CreateTemp()
		if err != nil {
			return nil, err
		}
		return &ToolFile{Path: t.Path(), store: store, temp: t}, nil
	}
	f, err := os.CreateTemp("", "mephstore-build-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("build: temp file: %w", err)
	}
	f.Close()
	return &ToolFile{Path: f.Name(), store: store}, nil
}

// Stage makes what was written a staged blob, ready for Commit (meter may
// be nil).
func (t *ToolFile) Stage(ctx context.Context, meter progress.Meter) (*cas.Staged, error) {
	if t.temp != nil {
		return t.temp.Stage(ctx, meter)
	}
	f, err := os.Open(t.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	defer os.Remove(t.Path)
	return t.store.Stage(ctx, f, cas.Unknown, meter)
}

// Discard removes the file unless it was staged.
func (t *ToolFile) Discard() {
	if t.temp != nil {
		t.temp.Discard()
		return
	}
	os.Remove(t.Path)
}
