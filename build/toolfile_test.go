package build

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/cas"
)

// streamOnly hides every optional capability of a blob store.
type streamOnly struct{ cas.BlobStore }

// TestToolFile: a tool writes a file by path and it becomes a blob, with
// the store's own temp file (moved into the pool) and with the fallback
// that streams a file of its own; a discarded one leaves nothing.
func TestToolFile(t *testing.T) {
	repo := newRepo(t)
	s := repo.Store()
	for name, blobs := range map[string]cas.BlobStore{"temp files": s.Blobs(), "streamed": streamOnly{s.Blobs()}} {
		t.Run(name, func(t *testing.T) {
			tf, err := NewToolFile(s, blobs)
			if err != nil {
				t.Fatal(err)
			}
			inPool := strings.HasPrefix(tf.Path, s.Dir())
			if _, capable := blobs.(cas.TempFiles); inPool != capable {
				t.Fatalf("%s: path %s", name, tf.Path)
			}
			body := bytes.Repeat([]byte(name), 100_000)
			if err := os.WriteFile(tf.Path, body, 0o644); err != nil { // as a tool would
				t.Fatal(err)
			}
			st, err := tf.Stage(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			ss, err := s.Writer(ctx, "test")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ss.Commit(ctx, st); err != nil {
				t.Fatal(err)
			}
			ss.Close()
			f, err := s.Blobs().Open(ctx, st.Digest)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(f)
			f.Close()
			if !bytes.Equal(got, body) {
				t.Fatalf("blob holds %d bytes", len(got))
			}
			if _, err := os.Stat(tf.Path); !os.IsNotExist(err) {
				t.Fatalf("the tool file stayed: %v", err)
			}
			gone, err := NewToolFile(s, blobs)
			if err != nil {
				t.Fatal(err)
			}
			gone.Discard()
			if _, err := os.Stat(gone.Path); !os.IsNotExist(err) {
				t.Fatalf("a discarded tool file stayed: %v", err)
			}
		})
	}
}
