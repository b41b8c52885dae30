package build

import (
	"path"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/catalog"
)

// FuzzCheckSerial: an accepted serial is a version name and a path
// component as insert checks them.
func FuzzCheckSerial(f *testing.F) {
	for _, s := range []string{"20261122", "20261122.1", "2026112", "20261122.", "20261122.1234567", "../x", "20261122\n", strings.Repeat("1", 30000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := CheckSerial(s); err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("two-line error %q", err)
			}
			return
		}
		if err := catalog.CheckName("version name", s); err != nil {
			t.Fatalf("serial %q accepted but not a valid version name: %v", s, err)
		}
	})
}

// FuzzArchivePaths feeds the tar guard a stream of entries (one per line:
// a type letter, a path and, for links, a target) and checks what it lets
// through: every path is clean and relative, and no accepted entry or hard
// link target lies below an accepted symbolic link.
func FuzzArchivePaths(f *testing.F) {
	for _, s := range []string{
		"d ./\nf ./etc/hostname\nh ./etc/hl ./etc/hostname",
		"s ./sl /host/dir\nh ./etc/hl sl/canary",
		"s ./sl /host/dir\nf ./sl/planted",
		"s ./up ../../../../host\nh ./hl up/canary",
		"f ./etc/../../evil",
		"f /etc/evil",
		"s ./lib /tmp\nd ./lib\nf ./lib/ok",
		"h ./x ../../etc/shadow",
		"h ./x .",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream string) {
		var g guard
		links := map[string]bool{}
		for _, line := range strings.Split(stream, "\n") {
			kind, rest, _ := strings.Cut(line, " ")
			name, link, _ := strings.Cut(rest, " ")
			p, err := cleanPath(name)
			if err != nil {
				continue
			}
			e := &Entry{Path: p, Link: link}
			switch kind {
			case "d":
				e.Type = TypeDir
			case "s":
				e.Type = TypeSymlink
			case "h":
				e.Type = TypeHardlink
			default:
				e.Type = TypeRegular
			}
			if err := g.check(e); err != nil {
				continue
			}
			if path.IsAbs(e.Path) || (e.Path != "" && path.Clean(e.Path) != e.Path) || strings.HasPrefix(e.Path+"/", "../") {
				t.Fatalf("accepted path %q", e.Path)
			}
			for _, q := range []string{e.Path, map[bool]string{true: e.Link}[e.Type == TypeHardlink]} {
				for d := path.Dir(q); q != "" && d != "." && d != "/"; d = path.Dir(d) {
					if links[d] {
						t.Fatalf("accepted %q (%v, link %q) below the symbolic link %q", e.Path, e.Type, e.Link, d)
					}
				}
			}
			if e.Type == TypeHardlink && (e.Link == "" || path.IsAbs(e.Link) || strings.HasPrefix(e.Link+"/", "../")) {
				t.Fatalf("accepted hard link target %q", e.Link)
			}
			switch e.Type {
			case TypeSymlink:
				links[e.Path] = true
			default:
				delete(links, e.Path)
			}
		}
	})
}
