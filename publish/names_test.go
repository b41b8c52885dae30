package publish

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/snapshot"
)

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"com.ubuntu.maas:daily:v3:download.0123456789abcdef.json", true},
		{"index.sjson", true},
		{"", false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"../x", false},
		{"com.ubuntu.maas:../../x.json", false},
		{"a/b", false},
		{"a\\b", false},
		{"a\x00b", false},
	} {
		p, err := within("/pub/daily/streams/v1", tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err == nil && filepath.Dir(p) != "/pub/daily/streams/v1" {
			t.Errorf("%q: %s is not directly in the directory", tc.name, p)
		}
		if err != nil && !errors.Is(err, ErrUnsafeName) {
			t.Errorf("%q: %v does not wrap ErrUnsafeName", tc.name, err)
		}
	}
}

// Whatever a snapshot holds (insert refuses such names; this one is
// committed behind its back), publish writes nothing outside its root.
func TestPublishCannotLeaveRoot(t *testing.T) {
	f := newFixture(t, "1", "daily", "evil")
	ss, err := f.r.Store().Writer(ctx, "test: hostile snapshot")
	if err != nil {
		t.Fatal(err)
	}
	cid := "com.ubuntu.maas:../../../x"
	hdr, _ := json.Marshal(map[string]string{"content_id": cid, "datatype": "image-ids", "format": "products:1.0"})
	_, err = snapshot.CommitDoc(ctx, ss, "evil", &snapshot.Doc{Catalogs: []snapshot.Catalog{{ContentID: cid, Header: hdr, Products: []snapshot.ProductRef{}}}})
	ss.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Publish(ctx, f.r, "evil", Options{Root: f.root, Signer: f.signer})
	if !errors.Is(err, ErrUnsafeName) {
		t.Fatalf("publish of a hostile content id: %v", err)
	}
	filepath.Walk(filepath.Dir(f.root), func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(fi.Name(), "x.") {
			t.Errorf("publish wrote %s", p)
		}
		return nil
	})
	// A stream record named like the root's own directories (made before
	// the rule, or by hand) is not published over the data pool.
	st, _ := f.r.Stream(ctx, "daily")
	bad := *st
	bad.Name = "data"
	if _, err := PublishSnapshot(ctx, f.r, &bad, st.Head, Options{Root: f.root}); !errors.Is(err, snapshot.ErrBadName) {
		t.Fatalf("publish as stream data: %v", err)
	}
}

// serve refuses a bucket root with a clear error instead of serving an
// empty directory named like it.
func TestServeRefusesBucketRoot(t *testing.T) {
	err := Serve(ctx, "127.0.0.1:0", "s3://mirror/www", ServeOptions{}, nil, nil)
	if !errors.Is(err, ErrNotDir) || !strings.Contains(err.Error(), "s3://mirror/www") {
		t.Fatalf("serve of a bucket root: %v", err)
	}
}
