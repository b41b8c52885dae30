package snapshot

import (
	"os"
	"testing"

	"github.com/mephstore/mephstore/internal/testtree"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testtree.Cleanup()
	os.Exit(code)
}
