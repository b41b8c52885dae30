package snapshot

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"
)

// putBlobs stores product blobs and returns their digests.
func putBlobs(t *testing.T, r *Repo, blobs ...string) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	err := r.Store().WithWriter(ctx, "test", func(ss *cas.Session) error {
		raw := make([][]byte, len(blobs))
		for i, b := range blobs {
			raw[i] = []byte(b)
		}
		var err error
		out, err = ss.PutBytes(ctx, raw...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameOf is sameVersions of the stored product blob cur, read as a
// publish's read-ahead reads it.
func sameOf(r *Repo, name string, prev, cur digest.Digest) (map[string]bool, error) {
	b, err := r.Store().ReadBlob(cur)
	if err != nil {
		return nil, err
	}
	_, versions, err := catalog.SplitProduct(name, b)
	if err != nil {
		return nil, err
	}
	return r.sameVersions(name, prev, versions)
}

func TestSameVersionsComparesBytes(t *testing.T) {
	r := newRepo(t)
	item := func(sum string) string {
		return fmt.Sprintf(`{"items":{"root-image.gz":{"ftype":"root-image.gz","path":"x","sha256":"%s","size":1}}}`, sum)
	}
	a, b, b2, c := item("aa"), item("bb"), item("b2"), item("cc")
	ds := putBlobs(t, r,
		`{"arch":"amd64","versions":{"20240101":`+a+`,"20240102":`+b+`}}`,
		`{"arch":"arm64","versions":{"20240101":`+a+`,"20240102":`+b2+`,"20240103":`+c+`}}`,
		`{"arch":"amd64","versions":{"20240103":`+c+`}}`,
		`{"arch":"amd64","versions":`,
	)
	for _, tc := range []struct {
		name      string
		prev, cur digest.Digest
		want      []string
	}{
		// A field of the product changed, a version's bytes changed, one
		// is new: only the first is the same.
		{"edited", ds[0], ds[1], []string{"20240101"}},
		{"nothing shared", ds[0], ds[2], nil},
		{"itself", ds[1], ds[1], []string{"20240101", "20240102", "20240103"}},
	} {
		same, err := sameOf(r, "p", tc.prev, tc.cur)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := slices.Sorted(maps.Keys(same)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: same versions %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := sameOf(r, "p", ds[0], ds[3]); err == nil {
		t.Error("a product blob that is not JSON: no error")
	}
	missing := digest.FromString("not stored")
	if _, err := sameOf(r, "p", missing, ds[0]); err == nil {
		t.Error("a product blob the store lacks: no error")
	}
}
