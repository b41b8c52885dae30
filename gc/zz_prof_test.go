package gc

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

func TestZZReap(t *testing.T) {
	if os.Getenv("ZZREAP") == "" {
		t.Skip()
	}
	ctx := context.Background()
	for _, j := range []int{1, 16, 4} {
		d := "/tmp/gcb/r" + strconv.Itoa(j)
		os.RemoveAll(d)
		exec.Command("python3", "/work/shared/tools/make-test-stream", "--out", d, "--releases", "12", "--arches", "5", "--kernels", "8", "--versions", "200").Run()
		if _, err := FindOrphans(ctx, d+".json", d, []string{"/tmp/gcb/small"}, TreeOptions{}); err != nil {
			t.Fatal(err)
		}
		exec.Command("sync").Run()
		time.Sleep(5 * time.Second)
		s := time.Now()
		rep, err := ReapOrphans(ctx, d+".json", d, nil, TreeOptions{Jobs: j})
		t.Logf("jobs %d: %d reaped in %v %v", j, rep.Reaped, time.Since(s), err)
	}
}
