package build

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrConfig is wrapped by every error in a build config.
var ErrConfig = errors.New("bad build config")

//go:embed meph-v3.yaml
var defaultConfig []byte

// DefaultConfig is the config used without --config: the Ubuntu releases
// MAAS supports today.
func DefaultConfig() []byte { return slices.Clone(defaultConfig) }

// Config is a build config in the meph-v3 schema.
type Config struct {
	ContentID    string    `yaml:"content_id"`     // template: {label}
	ProductIDPre string    `yaml:"product_id_pre"` // template: {label}
	KName        string    `yaml:"kname"`          // kernel file name in /boot before "-<kver>"
	Squashfs     *bool     `yaml:"squashfs"`       // make the squashfs item (default true)
	RootImage    bool      `yaml:"root_image"`     // make root-image.gz: not supported
	Compressor   string    `yaml:"compressor"`     // squashfs compressor: xz (default), zstd, gzip
	Releases     []Release `yaml:"releases"`
	// Customisation for every release: packages to install, apt
	// repositories to add, shell commands to run in the image.
	Packages  []string `yaml:"packages"`
	Repos     []string `yaml:"repos"`
	Customize []string `yaml:"customize"`

	Digest string `yaml:"-"` // sha256 of the config file's bytes
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
	BuiltinKernel   string       `yaml:"builtin_kernel"`
	Kernels         []KernelRow  `yaml:"kernels"`
	// Customisation for this release, after the config-wide one.
	Packages  []string `yaml:"packages"`
	Repos     []string `yaml:"repos"`
	Customize []string `yaml:"customize"`
}

// QuotedString is a YAML string that must be written as one: a version
// like 24.10 written bare is the number 24.1 to a YAML reader.
type QuotedString string

// UnmarshalYAML refuses anything but a string scalar.
func (q *QuotedString) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return fmt.Errorf("line %d: %q must be a quoted string (\"24.04\"), not %s", n.Line, n.Value, strings.TrimPrefix(n.ShortTag(), "!!"))
	}
	*q = QuotedString(n.Value)
	return nil
}

// KernelRow is one row of a release's kernels:
// [krel, arch, subarch, flavor, kpackage, [subarches...], {extra}].
type KernelRow struct {
	KRel      string
	Arch      string
	Subarch   string
	Flavor    string
	KPackage  string
	Subarches []string
	// DTB is the device tree to publish as boot-dtb (a path under
	// /lib/firmware/<kver>/device-tree/ or /boot/dtbs/<kver>/).
	DTB string
	// KName overrides the config's kname for this row.
	KName string
	// Extra keys of the row's mapping, written as product fields.
	Extra map[string]string
}

func (k KernelRow) String() string {
	return fmt.Sprintf("[%s, %s, %s, %s, %s]", k.KRel, k.Arch, k.Subarch, k.Flavor, k.KPackage)
}

// UnmarshalYAML reads a kernel row from its list form.
func (k *KernelRow) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode || len(n.Content) < 5 || len(n.Content) > 7 {
		return fmt.Errorf("line %d: a kernel row is [krel, arch, subarch, flavor, kpackage, [subarches...], {dtb: ..., kname: ...}]", n.Line)
	}
	var s [5]string
	for i := range 5 {
		c := n.Content[i]
		if c.Kind != yaml.ScalarNode || c.Value == "" {
			return fmt.Errorf("line %d: kernel row field %d must be a non-empty string", c.Line, i+1)
		}
		s[i] = c.Value
	}
	k.KRel, k.Arch, k.Subarch, k.Flavor, k.KPackage = s[0], s[1], s[2], s[3], s[4]
	if len(n.Content) > 5 {
		if err := n.Content[5].Decode(&k.Subarches); err != nil {
			return fmt.Errorf("line %d: subarches: %w", n.Content[5].Line, err)
		}
	}
	if len(n.Content) > 6 {
		var extra map[string]string
		if err := n.Content[6].Decode(&extra); err != nil {
			return fmt.Errorf("line %d: kernel row options: %w", n.Content[6].Line, err)
		}
		for key, v := range extra {
			switch key {
			case "dtb":
				k.DTB = v
			case "kname":
				k.KName = v
			default:
				if k.Extra == nil {
					k.Extra = map[string]string{}
				}
				k.Extra[key] = v
			}
		}
	}
	if len(k.Subarches) == 0 {
		k.Subarches = []string{k.Subarch}
	}
	return nil
}

var (
	versionRe = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)
	dateRe    = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// ParseConfig reads a config; name is used in errors. Releases are
// completed from distro-info data (DistroInfo) where they leave fields
// out; distroInfo may be nil.
func ParseConfig(name string, b []byte, distroInfo map[string]DistroRelease) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", name, ErrConfig, err)
	}
	sum := sha256.Sum256(b)
	c.Digest = "sha256:" + hex.EncodeToString(sum[:])
	if c.ContentID == "" {
		c.ContentID = "com.ubuntu.maas:{label}:v3:download"
	}
	if c.ProductIDPre == "" {
		c.ProductIDPre = "com.ubuntu.maas.{label}:v3:boot:"
	}
	if c.KName == "" {
		c.KName = "vmlinuz"
	}
	if c.Compressor == "" {
		c.Compressor = "xz"
	}
	bad := func(format string, a ...any) (*Config, error) {
		return nil, fmt.Errorf("%s: %w: %s", name, ErrConfig, fmt.Sprintf(format, a...))
	}
	switch c.Compressor {
	case "xz", "zstd", "gzip":
	default:
		return bad("compressor %q: want xz, zstd or gzip", c.Compressor)
	}
	if c.RootImage {
		return bad("root_image: true: mephstore builds squashfs images only")
	}
	if c.Squashfs != nil && !*c.Squashfs {
		return bad("squashfs: false: every MAAS v3 version needs its squashfs")
	}
	if len(c.Releases) == 0 {
		return bad("no releases")
	}
	seen := map[string]bool{}
	for i := range c.Releases {
		r := &c.Releases[i]
		if r.Release == "" {
			return bad("release entry %d has no release", i+1)
		}
		if seen[r.Release] {
			return bad("release %s is listed twice", r.Release)
		}
		seen[r.Release] = true
		if !versionRe.MatchString(string(r.Version)) {
			return bad("release %s: version %q: want a quoted string like \"24.04\"", r.Release, r.Version)
		}
		if r.OS == "" {
			r.OS = "ubuntu"
		}
		if d, ok := distroInfo[r.Release]; ok {
			if r.ReleaseTitle == "" {
				r.ReleaseTitle = d.Title
			}
			if r.ReleaseCodename == "" {
				r.ReleaseCodename = d.Codename
			}
			if r.SupportEOL == "" {
				r.SupportEOL = d.EOL
			}
			if r.SupportESMEOL == "" {
				r.SupportESMEOL = d.ESMEOL
			}
		}
		if r.ReleaseTitle == "" || r.ReleaseCodename == "" || r.SupportEOL == "" || r.SupportESMEOL == "" {
			return bad("release %s: not in distro-info data (%s) and the config does not set release_title, release_codename, support_eol and support_esm_eol", r.Release, DistroInfoPath)
		}
		for _, d := range []string{r.SupportEOL, r.SupportESMEOL} {
			if !dateRe.MatchString(d) {
				return bad("release %s: date %q: want YYYY-MM-DD", r.Release, d)
			}
		}
		if len(r.Kernels) == 0 {
			return bad("release %s has no kernels", r.Release)
		}
		subarches := map[string]bool{}
		for _, k := range r.Kernels {
			key := k.Arch + "/" + k.Subarch
			if subarches[key] {
				return bad("release %s: two kernel rows for %s", r.Release, key)
			}
			subarches[key] = true
		}
	}
	return &c, nil
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
	EOL      string // eol-server when given, else eol
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
		d := DistroRelease{Title: get("version"), Codename: get("codename"), EOL: get("eol-server")}
		if d.EOL == "" {
			d.EOL = get("eol")
		}
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
