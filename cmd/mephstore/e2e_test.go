package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/internal/testcheck"
)

// The end-to-end tests need root, the network (Debian's archive, through
// the mirror this machine's apt uses), debootstrap and qemu-system-x86.
// They run with MEPHSTORE_E2E=1 (./scripts/test --e2e, and CI).

func e2e(t *testing.T) {
	t.Helper()
	if os.Getenv("MEPHSTORE_E2E") == "" {
		t.Skip("end-to-end: set MEPHSTORE_E2E=1 (./scripts/test --e2e)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("MEPHSTORE_E2E=1: the end-to-end tests need root (chroot, mounts)")
	}
}

// aptMirror is the Debian mirror this machine's apt sources use.
func aptMirror(t *testing.T) string {
	t.Helper()
	for _, glob := range []string{"/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			b, _ := os.ReadFile(f)
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "URIs:"); ok {
					return strings.Fields(v)[0]
				}
				if f := strings.Fields(l); len(f) >= 3 && f[0] == "deb" && !strings.HasPrefix(f[1], "[") {
					return f[1]
				}
			}
		}
	}
	t.Fatal("no Debian mirror in the apt sources")
	return ""
}

var minbaseOnce sync.Mutex

// minbase returns a debootstrap --variant=minbase bookworm root packed as
// .tar.xz, cached in MEPHSTORE_E2E_CACHE (default /var/cache/mephstore-e2e).
func minbase(t *testing.T) string {
	t.Helper()
	minbaseOnce.Lock()
	defer minbaseOnce.Unlock()
	cache := os.Getenv("MEPHSTORE_E2E_CACHE")
	if cache == "" {
		cache = "/var/cache/mephstore-e2e"
	}
	out := filepath.Join(cache, "bookworm-minbase.tar.xz")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "root")
	start := time.Now()
	if b, err := exec.Command("debootstrap", "--variant=minbase", "bookworm", root, aptMirror(t)).CombinedOutput(); err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, lastLines(b, 20))
	}
	tmp := out + ".tmp"
	cmd := exec.Command("sh", "-c", "tar --numeric-owner --xattrs -C "+root+" -cf - . | xz -T0 -3 > "+tmp)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pack: %v\n%s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	t.Logf("debootstrap and pack: %v", time.Since(start))
	return out
}

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// e2eConfig is the build config of the end-to-end tests (shared with
// bench/customize.sh).
func e2eConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/bookworm-e2e.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mountsBelow lists the mounts under dir.
func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// noWorkLeft checks that nothing is mounted in the store and no work tree
// is left.
func noWorkLeft(t *testing.T, store string) {
	t.Helper()
	if m := mountsBelow(t, store); len(m) > 0 {
		t.Fatalf("still mounted: %v", m)
	}
	ents, _ := os.ReadDir(filepath.Join(store, build.WorkDirName))
	if len(ents) > 0 {
		t.Fatalf("work trees left: %v", ents)
	}
}

func TestE2EBuildPublishBoot(t *testing.T) {
	e2e(t)
	src := minbase(t)
	store, s := newCLIStore(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(e2eConfig(t)), 0o644)
	run := func(args ...string) string {
		t.Helper()
		start := time.Now()
		out, err := exec.Command(binary, append(append([]string{}, s...), args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("mephstore %v: %v\n%s", args, err, lastLines(out, 30))
		}
		t.Logf("mephstore %s: %v", args[0], time.Since(start).Round(time.Second))
		return string(out)
	}
	run("stream", "create", "daily")
	run("-v", "build", "--config", cfg, "amd64", "bookworm", "20261122", src)
	noWorkLeft(t, store)
	run("key", "generate", "--out", filepath.Join(dir, "keys"))
	pub := filepath.Join(dir, "pub")
	run("publish", "daily", "--publish-root", pub, "--sign-key", filepath.Join(dir, "keys", "signing-key.asc"))
	tree := filepath.Join(pub, "daily")
	testcheck.Validate(t, tree, filepath.Join(dir, "keys", "keyring.gpg"))

	items := publishedItems(t, tree)
	kernel, initrd, squash := items["boot-kernel"], items["boot-initrd"], items["squashfs"]
	manifest, err := os.ReadFile(items["manifest"])
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^linux-image-([0-9][^\t]*)\t`).FindSubmatch(manifest)
	if m == nil {
		t.Fatalf("no linux-image-<kver> in the manifest:\n%s", manifest)
	}
	kver := string(m[1])
	if !strings.Contains(string(manifest), "initramfs-tools\t") {
		t.Fatalf("the manifest lacks initramfs-tools:\n%s", manifest)
	}

	// Boot it: the published kernel and initrd, the squashfs as the root.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	q := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "2",
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", kernel, "-initrd", initrd,
		"-drive", "file="+squash+",if=virtio,format=raw,readonly=on",
		"-append", "root=/dev/vda rootfstype=squashfs ro init=/bin/sh console=ttyS0 panic=-1")
	stdin, _ := q.StdinPipe()
	stdout, _ := q.StdoutPipe()
	q.Stderr = q.Stdout
	start := time.Now()
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	defer q.Process.Kill()
	var console bytes.Buffer
	var mu sync.Mutex
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			console.WriteString(sc.Text() + "\n")
			mu.Unlock()
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	// The shell's answer: the marker is split in the command, so the
	// echoed command line never matches.
	// Leading newlines take the place of characters a console not yet
	// reading may drop. Either way the marker's values are evaluated by the
	// booted shell ($(uname -r), /etc/os-release of the squashfs root).
	cmd := "\n\n" + `echo "MEPH""STORE uname=$(uname -r) id=$(. /etc/os-release; echo $ID-$VERSION_ID)"` + "\n"
	answer := regexp.MustCompile(`MEPHSTORE uname=([0-9][0-9A-Za-z.+~-]*) id=([a-z]+-[0-9.]+)`)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	shellUp := false
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				mu.Lock()
				t.Fatalf("qemu ended before the shell answered:\n%s", lastLines(console.Bytes(), 40))
			}
			if strings.Contains(l, "/bin/sh") || strings.Contains(l, "job control") || strings.HasPrefix(strings.TrimSpace(l), "#") {
				shellUp = true
			}
			if m := answer.FindStringSubmatch(l); m != nil {
				if m[1] != kver {
					t.Fatalf("the booted kernel is %s; the manifest says %s (%q)", m[1], kver, l)
				}
				if m[2] != "debian-12" {
					t.Fatalf("/etc/os-release says %s (%q)", m[2], l)
				}
				t.Logf("booted %s from the published squashfs in %v: %s", kver, time.Since(start).Round(time.Second), l)
				return
			}
		case <-tick.C:
			if shellUp {
				io.WriteString(stdin, cmd)
			}
		case <-ctx.Done():
			mu.Lock()
			t.Fatalf("no answer from the shell in time:\n%s", lastLines(console.Bytes(), 40))
		}
	}
}

func TestE2EFailuresLeaveNothing(t *testing.T) {
	e2e(t)
	src := minbase(t)
	store, s := newCLIStore(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(e2eConfig(t)), 0o644)
	if out, err := exec.Command(binary, append(s, "stream", "create", "daily")...).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	buildArgs := func(extra ...string) []string {
		return append(append(append([]string{}, s...), "build", "--config", cfg), append(extra, "amd64", "bookworm", "20261122", src)...)
	}
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"a package that does not exist", []string{"--add-package", "no-such-package-mephstore"}, "no-such-package-mephstore"},
		{"a customize command that fails", nil, "customize command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := buildArgs(tc.extra...)
			if tc.extra == nil {
				bad := filepath.Join(dir, "bad.yaml")
				os.WriteFile(bad, []byte(e2eConfig(t)+"      - exit 3\n"), 0o644)
				args = append(append(append([]string{}, s...), "build", "--config", bad), "amd64", "bookworm", "20261122", src)
			}
			out, err := exec.Command(binary, args...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("got %v:\n%s", err, lastLines(out, 10))
			}
			if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n > 0 {
				t.Errorf("the error is %d lines:\n%s", n+1, out)
			}
			noWorkLeft(t, store)
			b, _ := exec.Command(binary, append(s, "builds")...).Output()
			if !strings.Contains(string(b), "no pending builds") {
				t.Fatalf("a failed build left a pending build:\n%s", b)
			}
		})
	}
	// Interrupted while apt runs in the chroot: SIGINT and SIGTERM undo
	// the mounts and remove the work tree; after SIGKILL the next run does.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(binary, buildArgs()...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Minute)
			for len(mountsBelow(t, store)) < 3 {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("the build never mounted its tree:\n%s", out.String())
				}
				time.Sleep(50 * time.Millisecond) // polling for the mounts, not waiting for an outcome
			}
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			if err == nil {
				t.Fatalf("the build finished despite %v", sig)
			}
			if sig == syscall.SIGKILL {
				if len(mountsBelow(t, store)) == 0 {
					t.Fatal("SIGKILL left no mounts: the test did not kill it in the chroot")
				}
				exec.Command(binary, append(s, "builds")...).Run()
			}
			noWorkLeft(t, store)
		})
	}
}

// publishedItems reads a published tree's index and products file and
// returns the files of its (one) version by ftype.
func publishedItems(t *testing.T, tree string) map[string]string {
	t.Helper()
	var index struct {
		Index map[string]struct{ Path string }
	}
	b, err := os.ReadFile(filepath.Join(tree, "streams/v1/index.json"))
	if err == nil {
		err = json.Unmarshal(b, &index)
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range index.Index {
		var cat struct {
			Products map[string]struct {
				Versions map[string]struct {
					Items map[string]struct{ Ftype, Path string }
				}
			}
		}
		b, err := os.ReadFile(filepath.Join(tree, e.Path))
		if err == nil {
			err = json.Unmarshal(b, &cat)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range cat.Products {
			for _, v := range p.Versions {
				for _, it := range v.Items {
					out[it.Ftype] = filepath.Join(tree, it.Path)
				}
			}
		}
	}
	return out
}
