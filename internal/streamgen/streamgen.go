package streamgen

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mephstore/mephstore/internal/pgp"
)

// Spec says what tree to write.
type Spec struct {
	Releases []Release
	Arches   []string
	Kernels  int
	Versions []string
	DataSize int
	Seed     uint64
	NoMD5    bool
	Stream   string
	Updated  time.Time
	Breaks   []string
	// Signer signs the tree (.sjson and .json.gpg); nil writes an
	// unsigned tree.
	Signer *pgp.Signer
}

// Release is one release of the tree.
type Release struct{ Codename, Version, Title, EOL, ESMEOL string }

// Known releases, in the order a count picks them (then synthetic ones).
var known = []Release{
	{"noble", "24.04", "Noble Numbat", "2029-05-31", "2036-04-25"},
	{"jammy", "22.04", "Jammy Jellyfish", "2027-04-21", "2032-04-09"},
	{"focal", "20.04", "Focal Fossa", "2025-05-29", "2030-04-02"},
	{"bionic", "18.04", "Bionic Beaver", "2023-05-31", "2028-04-01"},
	{"xenial", "16.04", "Xenial Xerus", "2021-04-30", "2026-04-23"},
	{"oracular", "24.10", "Oracular Oriole", "", ""},
	{"plucky", "25.04", "Plucky Puffin", "", ""},
	{"questing", "25.10", "Questing Quokka", "", ""},
}

var knownArches = []string{"amd64", "arm64", "ppc64el", "s390x", "riscv64", "armhf", "i386"}

// Breaks lists every way a tree can be broken: the victim is the first
// product's newest version's boot-kernel (what a --max 1 reader reads).
var Breaks = map[string]string{
	"data":           "the victim's file is corrupted after the metadata was written",
	"sha256":         "the victim's sha256 is wrong",
	"md5":            "the victim's md5 is wrong (sha256 right)",
	"no-sha256":      "the victim has md5 but no sha256",
	"size":           "the victim's size is off by one",
	"size-string":    "the victim's size is a JSON string",
	"missing":        "the victim's file is deleted",
	"dotdot-path":    "the victim's path contains '..' (still naming the right file)",
	"abs-path":       "the victim's path starts with '/'",
	"escape-path":    "the victim's path leaves the tree (../../outside)",
	"no-format":      "the index entry lacks format: products:1.0",
	"no-datatype":    "the products file lacks datatype",
	"content-id":     "the products file's content_id differs from its index key",
	"content-id-dir": "the content id holds ../ (com.ubuntu.maas:../../x)",
	"product-dir":    "the victim product's name holds /../ (com.ubuntu.maas:../../x)",
	"long-name":      "the victim version's name is 30,000 digits long",
	"maas-field":     "the first product lacks release_title",
	"subarches-list": "the first product's subarches is a list",
	"no-manifest":    "the victim version has no manifest item",
	"version-name":   "the victim version is named like 2024-06-15",
	"not-json":       "the products file is not JSON",
	"json-path":      "(signed) index.sjson points at the .json products files",
	"tamper":         "(signed) the products .sjson is edited after signing",
	"bom":            "(signed) the products .sjson starts with a UTF-8 BOM",
	"no-detached":    "(signed) no .json.gpg files are written",
}

var signedOnly = []string{"json-path", "tamper", "bom", "no-detached"}

// ParseArgs reads make-test-stream's flags: --releases N|names, --arches
// N|names, --kernels N, --versions N|names, --data-size BYTES, --seed N,
// --no-md5, --stream NAME, --updated EPOCH, --break KIND (repeatable).
func ParseArgs(args []string) (Spec, error) {
	fs := flag.NewFlagSet("streamgen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rels := fs.String("releases", "1", "")
	arches := fs.String("arches", "amd64,arm64", "")
	kernels := fs.Int("kernels", 1, "")
	versions := fs.String("versions", "2", "")
	size := fs.Int("data-size", 64, "")
	seed := fs.Uint64("seed", 0, "")
	noMD5 := fs.Bool("no-md5", false, "")
	stream := fs.String("stream", "daily", "")
	updated := fs.Int64("updated", 1718409600, "")
	var breaks multi
	fs.Var(&breaks, "break", "")
	if err := fs.Parse(args); err != nil {
		return Spec{}, err
	}
	if fs.NArg() > 0 {
		return Spec{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	s := Spec{Arches: pick(*arches, knownArches, func(i int) string { return fmt.Sprintf("arch%02d", i) }),
		Kernels: *kernels, DataSize: *size, Seed: *seed, NoMD5: *noMD5, Stream: *stream,
		Updated: time.Unix(*updated, 0).UTC(), Breaks: breaks}
	var err error
	if s.Releases, err = releases(*rels); err != nil {
		return Spec{}, err
	}
	s.Versions = versionNames(*versions)
	for _, b := range s.Breaks {
		if _, ok := Breaks[b]; !ok {
			return Spec{}, fmt.Errorf("--break %s: unknown (known: %s)", b, strings.Join(slices.Sorted(maps.Keys(Breaks)), ", "))
		}
	}
	return s, nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// pick reads "3" (the first 3 known, then synthetic) or "a,b" (those).
func pick(spec string, known []string, synth func(int) string) []string {
	if n, err := strconv.Atoi(spec); err == nil {
		out := make([]string, n)
		for i := range out {
			if i < len(known) {
				out[i] = known[i]
			} else {
				out[i] = synth(i)
			}
		}
		return out
	}
	return strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == ' ' })
}

func releases(spec string) ([]Release, error) {
	if n, err := strconv.Atoi(spec); err == nil {
		out := make([]Release, n)
		for i := range out {
			if i < len(known) {
				out[i] = known[i]
			} else {
				out[i] = Release{fmt.Sprintf("test%02d", i), fmt.Sprintf("90.%02d", i), fmt.Sprintf("Test %02d", i), "", ""}
			}
		}
		return out, nil
	}
	var out []Release
	for _, name := range pick(spec, nil, nil) {
		i := slices.IndexFunc(known, func(r Release) bool { return r.Codename == name })
		if i < 0 {
			return nil, fmt.Errorf("unknown release %q", name)
		}
		out = append(out, known[i])
	}
	return out, nil
}

func versionNames(spec string) []string {
	if n, err := strconv.Atoi(spec); err == nil {
		start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		out := make([]string, n)
		for i := range out {
			out[i] = start.AddDate(0, 0, i).Format("20060102")
		}
		return out
	}
	return pick(spec, nil, nil)
}

// kernel is one kernel of a release: the product's subarch, the directory
// of its boot files and its flavour.
type kernel struct{ subarch, dir, flavor string }

func kernelsOf(ver string, n int) []kernel {
	base := []kernel{
		{"ga-" + ver, "ga-" + ver, "generic"},
		{"hwe-" + ver, "hwe-" + ver, "generic"},
		{"ga-" + ver + "-lowlatency", "ga-" + ver, "lowlatency"},
		{"hwe-" + ver + "-lowlatency", "hwe-" + ver, "lowlatency"},
		{"hwe-" + ver + "-edge", "hwe-" + ver + "-edge", "generic"},
		{"hwe-" + ver + "-lowlatency-edge", "hwe-" + ver + "-edge", "lowlatency"},
	}
	out := make([]kernel, n)
	for i := range out {
		if i < len(base) {
			out[i] = base[i]
		} else {
			s := fmt.Sprintf("ga-%s-k%d", ver, i)
			out[i] = kernel{s, s, "generic"}
		}
	}
	return out
}

// Stats counts what Write wrote.
type Stats struct{ Products, Versions, Items, Files int }

func (s *Spec) broken(kind string) bool { return slices.Contains(s.Breaks, kind) }

// fileInfo is a data file written: its checksums and size.
type fileInfo struct {
	sha256, md5 string
	size        int
}

// writer holds the state of one Write.
type writer struct {
	spec    *Spec
	out     string
	rnd     *rand.Rand
	written map[string]fileInfo
	// victimRel is the victim's file, whatever its path says once broken.
	victimRel string
}

// Write writes the tree into dir (created; it must not exist or be empty).
func Write(dir string, spec Spec) (*Stats, error) {
	for _, b := range spec.Breaks {
		if slices.Contains(signedOnly, b) && spec.Signer == nil {
			return nil, fmt.Errorf("--break %s needs a signed tree", b)
		}
	}
	if spec.Stream == "" {
		spec.Stream = "daily"
	}
	if spec.Updated.IsZero() {
		spec.Updated = time.Unix(1718409600, 0).UTC()
	}
	w := &writer{spec: &spec, out: dir, rnd: rand.New(rand.NewPCG(spec.Seed, 0x6d657068)), written: map[string]fileInfo{}}
	products, st, err := w.products()
	if err != nil {
		return nil, err
	}
	if err := w.metadata(products); err != nil {
		return nil, err
	}
	return st, nil
}
