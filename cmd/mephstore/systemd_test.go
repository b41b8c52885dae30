package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped systemd units run mephstore with flags it has: each
// ExecStart's arguments parse (with --help added, nothing runs).
func TestSystemdUnitsParse(t *testing.T) {
	units, _ := filepath.Glob("../../contrib/systemd/*.service")
	if len(units) < 2 {
		t.Fatalf("units: %v", units)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "\\\n", " ")
		var exec string
		for _, l := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
				exec = v
			}
		}
		f := strings.Fields(exec)
		if len(f) < 2 || filepath.Base(f[0]) != "mephstore" {
			t.Fatalf("%s: ExecStart=%q", u, exec)
		}
		if r := cli(t, nil, append(f[1:], "--help")...); r.code != 0 {
			t.Errorf("%s: %v: %+v", filepath.Base(u), f[1:], r)
		}
	}
}
