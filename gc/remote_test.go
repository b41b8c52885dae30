package gc

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/s3test"
	"github.com/mephstore/mephstore/s3store"
	"github.com/mephstore/mephstore/snapshot"
)

// On a store on a bucket, leases are shared: gc on one machine keeps a
// blob that an operation on another machine holds a lease on, and reaps
// it once the lease is released.
func TestLeaseOnOneMachineKeepsBlobFromGCOnAnother(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket("images")
	cfg, err := s3store.ParseRoot("s3://images/store", srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	srv.Env(t)
	if _, err := s3store.InitStore(ctx, cfg, false); err != nil {
		t.Fatal(err)
	}
	machine := func(name string) *cas.Store {
		r, err := s3store.OpenStore(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		s, err := cas.OpenRemote(filepath.Join(t.TempDir(), name), r, cas.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := machine("a"), machine("b")
	ss, err := a.Writer(ctx, "build")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := ss.PutBytes(ctx, []byte("a squashfs a build on machine a just made"))
	ss.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, release, err := a.Hold(ctx, "build", nil, cas.Ref{Kind: cas.RefBlob, Digest: ds[0]})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the first run records orphans, the second reaps them
		if _, err := Run(ctx, snapshot.New(b), Options{Older: 0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Blobs().Stat(ctx, ds[0]); err != nil {
		t.Fatalf("gc on b reaped a blob leased on a: %v", err)
	}
	release()
	for range 2 {
		if _, err := Run(ctx, snapshot.New(b), Options{Older: 0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Blobs().Stat(ctx, ds[0]); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("after the release, gc kept the blob: %v", err)
	}
}
