package cas_test

import (
	"context"
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/cas/recordtest"
)

// The embedded record store (a writer session's badger) passes the
// record-store contract.
func TestRecordsConformance(t *testing.T) {
	recordtest.Run(t, func(t *testing.T) cas.Records {
		ss, err := freshStore(t).Writer(context.Background(), "conformance")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Close() })
		return ss
	})
}
