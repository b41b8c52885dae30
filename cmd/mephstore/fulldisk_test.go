package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// smallFS mounts a tmpfs of size MiB (root only) for the test.
func smallFS(t *testing.T, mib int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a full-disk test mounts a small tmpfs: root only (CI runs as root)")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(mib)+"m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// fill writes a file until the file system is full, leaving keep bytes.
func fill(t *testing.T, dir string, keep int64) {
	t.Helper()
	var st unix.Statfs_t
	unix.Statfs(dir, &st)
	free := int64(st.Bavail) * int64(st.Bsize)
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for left := free - keep; left > 0; {
		n, err := f.Write(buf[:min(int64(len(buf)), left)])
		left -= int64(n)
		if err != nil {
			break
		}
	}
}

// runBin runs the mephstore binary and fails the test on a signal death
// (SIGBUS from badger's maps is what a full disk used to cause).
func runBin(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("mephstore %v died of %v:\n%s", args, ws.Signal(), lastLines(out, 5))
		}
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// On a full disk every writer refuses in one line with no crash, and gc
// (the command that frees space) still works, using the store's reserve,
// which it puts back afterwards.
func TestFullDisk(t *testing.T) {
	fs := smallFS(t, 120)
	store := filepath.Join(fs, "store")
	s := []string{"--store", store}
	if code, out := runBin(t, append(s, "init")...); code != 0 {
		t.Fatal(out)
	}
	big := filepath.Join(t.TempDir(), "big")
	writeRandom(t, big, 40<<20, 7)
	if code, out := runBin(t, append(s, "ingest", big)...); code != 0 {
		t.Fatal(out)
	}
	for _, keep := range []int64{0, 8 << 10, 2 << 20} {
		os.Remove(filepath.Join(fs, "filler"))
		fill(t, fs, keep)
		code, out := runBin(t, append(s, "stream", "create", "x"+strconv.Itoa(int(keep)))...)
		if code != exitFailure || !strings.Contains(out, "no space left") || strings.Count(out, "\n") != 1 {
			t.Fatalf("stream create with %d bytes free: code %d: %s", keep, code, out)
		}
		if code, out := runBin(t, append(s, "blobs")...); code != 0 || !strings.Contains(out, "sha256:") {
			t.Fatalf("blobs (a reader) on a full disk: %d %s", code, out)
		}
	}
	// gc on the full disk: the ingested blob is in no stream, so it goes.
	code, out := runBin(t, append(s, "gc", "--older", "0s")...)
	if code != 0 || !strings.Contains(out, "1 blob deleted") {
		t.Fatalf("gc on a full disk: %d %s", code, out)
	}
	if fi, err := os.Stat(filepath.Join(store, "reserve")); err != nil || fi.Size() != 32<<20 {
		t.Fatalf("the reserve is not back after gc: %v", err)
	}
	if code, out := runBin(t, append(s, "fsck")...); code != 0 {
		t.Fatalf("fsck after gc on a full disk: %s", out)
	}
	if code, out := runBin(t, append(s, "stream", "create", "after")...); code != 0 {
		t.Fatalf("a writer once gc freed space: %s", out)
	}
}

// Ingesting bytes the pool holds needs no room for a staging copy: a large
// file is hashed in place first when its size matches a pooled blob.
func TestReingestNeedsNoStagingSpace(t *testing.T) {
	fs := smallFS(t, 120)
	store := filepath.Join(fs, "store")
	s := []string{"--store", store}
	if code, out := runBin(t, append(s, "init")...); code != 0 {
		t.Fatal(out)
	}
	big := filepath.Join(t.TempDir(), "big")
	sum := writeRandom(t, big, 40<<20, 9)
	code, first := runBin(t, append(s, "ingest", big)...)
	if code != 0 {
		t.Fatal(first)
	}
	fill(t, fs, 34<<20) // room for a writer, not for a 40 MiB copy
	code, again := runBin(t, append(s, "ingest", big)...)
	if code != 0 || !strings.Contains(again, sum) {
		t.Fatalf("re-ingest with 34 MiB free: %d %s", code, again)
	}
	// New bytes of the same size still need (and get refused) the space.
	other := filepath.Join(t.TempDir(), "other")
	writeRandom(t, other, 40<<20, 10)
	if code, out := runBin(t, append(s, "ingest", other)...); code != exitFailure || !strings.Contains(out, "no space left") {
		t.Fatalf("new bytes with 34 MiB free: %d %s", code, out)
	}
	if code, out := runBin(t, append(s, "fsck")...); code != 0 {
		t.Fatalf("fsck: %s", out)
	}
}
