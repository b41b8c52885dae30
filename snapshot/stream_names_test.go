package snapshot

import (
	"errors"
	"strings"
	"testing"
)

func TestStreamNamesReserved(t *testing.T) {
	r := newRepo(t, "daily")
	for _, n := range []string{"data", "streams"} {
		if _, err := r.CreateStream(ctx, n, ""); !errors.Is(err, ErrBadName) || !strings.Contains(err.Error(), "publish root") {
			t.Errorf("stream %q: %v", n, err)
		}
	}
}
