package build

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// StatusPath is where an image's dpkg database lists its packages.
const StatusPath = "var/lib/dpkg/status"

// Package is one paragraph of a dpkg status file.
type Package struct {
	Name, Version, Arch, MultiArch, Status string
	Depends                                [][]string // alternatives, names only
	Provides                               []string
}

// Installed says whether dpkg considers the package installed.
func (p *Package) Installed() bool { return strings.HasSuffix(p.Status, " installed") }

// ParseStatus reads a dpkg status file.
func ParseStatus(b []byte) ([]Package, error) {
	var out []Package
	var cur Package
	var field string
	fields := map[string]*strings.Builder{}
	flush := func() {
		if len(fields) == 0 {
			return
		}
		get := func(k string) string {
			if v, ok := fields[k]; ok {
				return strings.TrimSpace(v.String())
			}
			return ""
		}
		cur = Package{Name: get("package"), Version: get("version"), Arch: get("architecture"),
			MultiArch: get("multi-arch"), Status: get("status")}
		for _, k := range []string{"pre-depends", "depends"} {
			cur.Depends = append(cur.Depends, parseDeps(get(k))...)
		}
		for _, alt := range parseDeps(get("provides")) {
			cur.Provides = append(cur.Provides, alt...)
		}
		if cur.Name != "" {
			out = append(out, cur)
		}
		clear(fields)
		field = ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case strings.TrimSpace(l) == "":
			flush()
		case l[0] == ' ' || l[0] == '\t':
			if field == "" {
				return nil, fmt.Errorf("%s line %d: continuation line without a field", StatusPath, line)
			}
			fields[field].WriteString("\n" + l)
		default:
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				return nil, fmt.Errorf("%s line %d: not a field: %q", StatusPath, line, l)
			}
			field = strings.ToLower(k)
			sb := &strings.Builder{}
			sb.WriteString(v)
			fields[field] = sb
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", StatusPath, err)
	}
	flush()
	return out, nil
}

// parseDeps reads a Depends-style field into groups of alternatives,
// keeping the package names only.
func parseDeps(v string) [][]string {
	var out [][]string
	for _, group := range strings.Split(v, ",") {
		var alts []string
		for _, a := range strings.Split(group, "|") {
			a = strings.TrimSpace(a)
			if i := strings.IndexAny(a, " (["); i >= 0 {
				a = a[:i]
			}
			a, _, _ = strings.Cut(a, ":") // foo:any
			if a != "" {
				alts = append(alts, a)
			}
		}
		if len(alts) > 0 {
			out = append(out, alts)
		}
	}
	return out
}

// Manifest is what `dpkg-query --show` prints for the packages: each
// package not in the not-installed state, as name<TAB>version, the name
// qualified by its architecture when dpkg would (Multi-Arch: same, or a
// foreign architecture), sorted by name and architecture.
func Manifest(pkgs []Package, nativeArch string) []byte {
	type row struct{ name, arch, line string }
	var rows []row
	for _, p := range pkgs {
		if strings.HasSuffix(p.Status, " not-installed") || p.Status == "" {
			continue
		}
		name := p.Name
		if p.MultiArch == "same" || (p.Arch != "" && p.Arch != "all" && p.Arch != nativeArch) {
			name += ":" + p.Arch
		}
		rows = append(rows, row{p.Name, p.Arch, name + "\t" + p.Version + "\n"})
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.arch, b.arch)
	})
	var b bytes.Buffer
	for _, r := range rows {
		b.WriteString(r.line)
	}
	return b.Bytes()
}

var kernelPkgRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^linux-image-(?:unsigned-)?([0-9].*)$`) })

// KernelVersions returns the kernel versions the package kpkg brings in:
// the versions of the linux-image-<kver> packages installed that kpkg
// depends on, directly or through other installed packages (and the
// packages that provide what they depend on), nearest first.
func KernelVersions(pkgs []Package, kpkg string) ([]string, error) {
	byName := map[string]*Package{}
	providers := map[string][]string{}
	for i := range pkgs {
		p := &pkgs[i]
		if !p.Installed() {
			continue
		}
		byName[p.Name] = p
		for _, v := range p.Provides {
			providers[v] = append(providers[v], p.Name)
		}
	}
	if byName[kpkg] == nil {
		return nil, fmt.Errorf("kernel package %s is not installed", kpkg)
	}
	var out []string
	seen := map[string]bool{kpkg: true}
	queue := []string{kpkg}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if m := kernelPkgRe().FindStringSubmatch(name); m != nil && !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
		p := byName[name]
		if p == nil {
			continue
		}
		for _, alts := range p.Depends {
			for _, a := range alts {
				names := append([]string{a}, providers[a]...)
				for _, n := range names {
					if !seen[n] && byName[n] != nil {
						seen[n] = true
						queue = append(queue, n)
					}
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("kernel package %s depends on no installed linux-image-<version> package", kpkg)
	}
	return out, nil
}
