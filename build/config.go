package build

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// ErrConfig is wrapped by every error in a build config.
var ErrConfig = errors.New("bad build config")

//go:embed meph-v3.yaml
var defaultConfig []byte

// DefaultConfig is the config used without --config: the Ubuntu releases
// MAAS supports today.
func DefaultConfig() []byte { return slices.Clone(defaultConfig) }

// Config is a build config in the meph-v3 schema: maas-images'
// conf/meph-v3.yaml loads as it is (anchors and aliases anywhere), and
// mephstore adds a few keys of its own (compressor, packages, repos,
// customize).
type Config struct {
	// ContentID and ProductIDPre name the products. {label} stands for the
	// label of the stream the build goes to; a meph2 literal such as
	// com.ubuntu.maas:candidate:v3:download has its label part replaced
	// by the stream's, as meph2-util promote does.
	ContentID    string `yaml:"content_id"`
	ProductIDPre string `yaml:"product_id_pre"`
	// KName is the boot directory of a row's items, a template over the
	// row's fields as in meph2: <release>/<arch>/<serial>/<kname>/<flavor>/
	// boot-kernel. Default "%(krel)s"; meph-v3 says "%(subarch)s".
	KName      string    `yaml:"kname"`
	Squashfs   *bool     `yaml:"squashfs"`   // make the squashfs item (must be true)
	RootImage  bool      `yaml:"root_image"` // make root-image.gz: not supported
	Compressor string    `yaml:"compressor"` // squashfs compressor: xz (default), zstd, gzip
	Releases   []Release `yaml:"releases"`
	// EnableProposed turns on the -proposed pocket for customised builds.
	EnableProposed bool `yaml:"enable_proposed"`
	// Customisation for every release: packages to install, apt
	// repositories to add, shell commands to run in the image.
	Packages  []string `yaml:"packages"`
	Repos     []string `yaml:"repos"`
	Customize []string `yaml:"customize"`

	// meph2 keys that mephstore accepts and does not act on (see Ignored).
	Subarches        yaml.Node `yaml:"subarches"`      // anchors for the rows
	Misc             yaml.Node `yaml:"misc"`           // anchors for the rows
	EnableDI         *bool     `yaml:"enable_di"`      // d-i kernels: not built
	DefaultTarget    string    `yaml:"default_target"` // meph2-cloudimg-sync's target
	ProposedPackages yaml.Node `yaml:"proposed_packages"`
	PrePurgePackages yaml.Node `yaml:"pre_purge_packages"`

	proposedPackages, prePurge []string // the two above, as lists

	Digest string `yaml:"-"` // sha256 of the config file's bytes
	// Ignored lists the keys the config sets that mephstore accepts but
	// does not act on, each with the reason ("-v" prints them).
	Ignored []string `yaml:"-"`
}

// Release is one release entry.
type Release struct {
	Release         string       `yaml:"release"`
	Version         QuotedString `yaml:"version"`
	OS              string       `yaml:"os"`
	ReleaseTitle    string       `yaml:"release_title"`
	ReleaseCodename string       `yaml:"release_codename"`
	SupportEOL      string       `yaml:"support_eol"`
	SupportESMEOL   string       `yaml:"support_esm_eol"`
	// BuiltinKernel is meph2's kernel installed into the root image (a
	// package name, or a map of arch to package with a default). mephstore
	// puts each row's kernel package in the image instead (see Ignored).
	BuiltinKernel yaml.Node   `yaml:"builtin_kernel"`
	Kernels       []KernelRow `yaml:"kernels"`
	// Customisation for this release, after the config-wide one.
	Packages  []string `yaml:"packages"`
	Repos     []string `yaml:"repos"`
	Customize []string `yaml:"customize"`

	// missing says what the release lacks to be built (release fields
	// neither in the config nor in distro-info data); checked at build.
	missing string
}

// QuotedString is a YAML string that must be written as one: a version
// like 24.10 written bare is the number 24.1 to a YAML reader.
type QuotedString string

// UnmarshalYAML refuses anything but a string scalar.
func (q *QuotedString) UnmarshalYAML(n *yaml.Node) error {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return fmt.Errorf("line %d: version %s is a YAML %s: quote it (\"%s\") so that it stays a string", n.Line, n.Value, strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)
	}
	*q = QuotedString(n.Value)
	return nil
}

// deref follows an alias to its anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

var (
	// componentRe is what a release version may be: one component of a
	// product name (24.04, 12, 7.0), no ':' and no space.
	componentRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+~_-]*$`) })
	dateRe      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`) })
)

// ParseConfig reads a config; name is used in errors. Releases are
// completed from distro-info data (DistroInfo) where they leave fields
// out; distroInfo may be nil.
func ParseConfig(name string, b []byte, distroInfo map[string]DistroRelease) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", name, ErrConfig, oneLine(err))
	}
	sum := sha256.Sum256(b)
	c.Digest = "sha256:" + hex.EncodeToString(sum[:])
	if err := c.check(distroInfo); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", name, ErrConfig, err)
	}
	return &c, nil
}

// oneLine joins the lines of a YAML error ("yaml: unmarshal errors:\n  line
// 3: ...") into one.
func oneLine(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return errors.New(strings.Join(parts, "; "))
}

// check fills in defaults and refuses what mephstore cannot build.
func (c *Config) check(distroInfo map[string]DistroRelease) error {
	c.ContentID = cmp.Or(c.ContentID, "com.ubuntu.maas:{label}:v3:download")
	c.ProductIDPre = cmp.Or(c.ProductIDPre, "com.ubuntu.maas.{label}:v3:boot")
	c.KName = cmp.Or(c.KName, "%(krel)s")
	c.Compressor = cmp.Or(c.Compressor, "xz")
	if strings.Contains(c.ContentID, ":v2:") || strings.Contains(c.ProductIDPre, ":v2:") {
		return fmt.Errorf("content_id %s: v2 streams are not supported: mephstore builds MAAS v3 streams (use a meph-v3 config)", c.ContentID)
	}
	switch c.Compressor {
	case "xz", "zstd", "gzip":
	default:
		return fmt.Errorf("compressor %q: want xz, zstd or gzip", c.Compressor)
	}
	if c.RootImage {
		return errors.New("root_image: true: mephstore builds squashfs images only (set root_image: false)")
	}
	if c.Squashfs != nil && !*c.Squashfs {
		return errors.New("squashfs: false: every MAAS v3 version needs its squashfs (set squashfs: true)")
	}
	if len(c.Releases) == 0 {
		return errors.New("no releases")
	}
	c.noteIgnored()
	seen := map[string]bool{}
	for i := range c.Releases {
		r := &c.Releases[i]
		if r.Release == "" {
			return fmt.Errorf("release entry %d has no release", i+1)
		}
		if !componentRe().MatchString(r.Release) {
			return fmt.Errorf("release entry %d: release %q: want a series name like noble", i+1, r.Release)
		}
		if seen[r.Release] {
			return fmt.Errorf("release %s is listed twice", r.Release)
		}
		seen[r.Release] = true
		if err := c.checkRelease(r, distroInfo); err != nil {
			return err
		}
	}
	return nil
}

// packageList reads meph2's package lists: a string of names separated by
// commas or blanks, or a YAML list.
func packageList(n *yaml.Node) []string {
	var out []string
	add := func(v string) {
		out = append(out, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })...)
	}
	switch n.Kind {
	case yaml.ScalarNode:
		add(n.Value)
	case yaml.SequenceNode:
		for _, c := range n.Content {
			add(c.Value)
		}
	}
	return out
}

// noteIgnored lists the meph2 keys the config sets that mephstore does not
// act on.
func (c *Config) noteIgnored() {
	if c.EnableDI != nil && *c.EnableDI {
		c.Ignored = append(c.Ignored, "enable_di: true: d-i kernels and initrds are not built (MAAS v3 streams do not use them)")
	}
	if c.DefaultTarget != "" {
		c.Ignored = append(c.Ignored, "default_target: the stream a build goes to is --stream")
	}
	c.proposedPackages = packageList(&c.ProposedPackages)
	c.prePurge = packageList(&c.PrePurgePackages)
	for _, r := range c.Releases {
		if !r.BuiltinKernel.IsZero() {
			c.Ignored = append(c.Ignored, "builtin_kernel: each row's kernel package is what the image holds or gets installed")
			break
		}
	}
	seen := map[string]bool{}
	for _, r := range c.Releases {
		for _, k := range r.Kernels {
			if k.KIHelper != "" && !seen["kihelper"] {
				seen["kihelper"] = true
				c.Ignored = append(c.Ignored, "kihelper (kernel row option): kernel helpers are not run; the kernel and initrd are published as the image has them")
			}
			if k.DIFormat != "" && !seen["di-format"] {
				seen["di-format"] = true
				c.Ignored = append(c.Ignored, "di-format (kernel row option): d-i kernels are not built")
			}
		}
	}
}

// checkRelease completes a release from distro-info data and checks it and
// its rows.
func (c *Config) checkRelease(r *Release, distroInfo map[string]DistroRelease) error {
	if !componentRe().MatchString(string(r.Version)) {
		return fmt.Errorf("release %s: version %q: want one product name component: letters, digits and . _ - + ~ (like \"24.04\")", r.Release, r.Version)
	}
	r.OS = cmp.Or(r.OS, "ubuntu")
	if d, ok := distroInfo[r.Release]; ok {
		r.ReleaseTitle = cmp.Or(r.ReleaseTitle, d.Title)
		r.ReleaseCodename = cmp.Or(r.ReleaseCodename, d.Codename)
		r.SupportEOL = cmp.Or(r.SupportEOL, d.EOL)
		r.SupportESMEOL = cmp.Or(r.SupportESMEOL, d.ESMEOL)
	}
	if r.ReleaseTitle == "" || r.ReleaseCodename == "" || r.SupportEOL == "" || r.SupportESMEOL == "" {
		r.missing = fmt.Sprintf("release %s: not in distro-info data (%s) and the config does not set release_title, release_codename, support_eol and support_esm_eol", r.Release, DistroInfoPath)
	}
	for _, d := range []string{r.SupportEOL, r.SupportESMEOL} {
		if d != "" && !dateRe().MatchString(d) {
			return fmt.Errorf("release %s: date %q: want YYYY-MM-DD", r.Release, d)
		}
	}
	if len(r.Kernels) == 0 {
		return fmt.Errorf("release %s has no kernels", r.Release)
	}
	products := map[string]int{}
	for _, k := range r.Kernels {
		if _, err := c.bootDir(r, k, "20260101"); err != nil {
			return fmt.Errorf("line %d: kname: %w", k.Line, err)
		}
		key := k.Arch + ":" + k.ProductSubarch()
		if line, ok := products[key]; ok {
			return fmt.Errorf("line %d: release %s: the kernel row [%s] names product %s:%s again (line %d)", k.Line, r.Release, k, r.Version, key, line)
		}
		products[key] = k.Line
	}
	return nil
}

// LoadConfig reads the config at path, or the default one when path is "".
func LoadConfig(path string) (*Config, error) {
	di, err := ReadDistroInfo(DistroInfoPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if path == "" {
		return ParseConfig("default config", defaultConfig, di)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseConfig(path, b, di)
}

// Release returns the entry of release r.
func (c *Config) Release(r string) (*Release, error) {
	var names []string
	for i := range c.Releases {
		if c.Releases[i].Release == r {
			return &c.Releases[i], nil
		}
		names = append(names, c.Releases[i].Release)
	}
	return nil, fmt.Errorf("%w: release %s is not in the config (it has %s)", ErrConfig, r, strings.Join(names, ", "))
}

// Rows returns the kernel rows of the release for arch.
func (r *Release) Rows(arch string) []KernelRow {
	var out []KernelRow
	for _, k := range r.Kernels {
		if k.Arch == arch {
			out = append(out, k)
		}
	}
	return out
}

// DistroInfoPath is where Debian's distro-info-data keeps Ubuntu's releases.
const DistroInfoPath = "/usr/share/distro-info/ubuntu.csv"

// DistroRelease is what distro-info data says of a release.
type DistroRelease struct {
	Title    string // "24.04 LTS"
	Codename string // "Noble Numbat"
	EOL      string // the eol column (meph2's support_eol)
	ESMEOL   string // eol-esm when given, else EOL
}

// ReadDistroInfo reads distro-info-data's ubuntu.csv, keyed by series.
func ReadDistroInfo(path string) (map[string]DistroRelease, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("distro-info data: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var cols map[string]int
	out := map[string]DistroRelease{}
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ",")
		if cols == nil {
			cols = map[string]int{}
			for i, c := range fields {
				cols[c] = i
			}
			for _, need := range []string{"version", "codename", "series", "eol"} {
				if _, ok := cols[need]; !ok {
					return nil, fmt.Errorf("%s: no %s column in the header", path, need)
				}
			}
			continue
		}
		get := func(c string) string {
			if i, ok := cols[c]; ok && i < len(fields) {
				return fields[i]
			}
			return ""
		}
		if get("series") == "" {
			continue
		}
		// support_eol is the eol column, as meph2 has it.
		d := DistroRelease{Title: get("version"), Codename: get("codename"), EOL: get("eol")}
		d.ESMEOL = get("eol-esm")
		if d.ESMEOL == "" {
			d.ESMEOL = d.EOL
		}
		out[get("series")] = d
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
