package publish_test

import (
	"context"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/s3test"
	"github.com/mephstore/mephstore/publish"
	"github.com/mephstore/mephstore/publish/targettest"
	"github.com/mephstore/mephstore/s3store"
)

// TestS3TargetConformance runs the publish target's contract on a bucket
// prefix of a real S3 server, with the pool on the same bucket (data
// files are server-side copies).
func TestS3TargetConformance(t *testing.T) {
	targettest.Run(t, func(t *testing.T) targettest.Fixture {
		srv := s3test.Start(t)
		srv.MakeBucket("mirror")
		srv.Env(t)
		root := "s3://mirror/www?endpoint=" + srv.Endpoint()
		open := func() publish.Target {
			tg, err := publish.OpenTarget(root)
			if err != nil {
				t.Fatal(err)
			}
			return tg
		}
		cfg, err := s3store.ParseRoot("s3://mirror/store", srv.Endpoint())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b, err := s3store.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var blobs cas.BlobStore = s3store.NewPool(b)
		return targettest.Fixture{Target: open(), Blobs: blobs, Reopen: open}
	})
}
