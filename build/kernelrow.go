package build

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// KernelRow is one row of a release's kernels, as meph2 has them:
// [krel, arch, subarch, flavor, kpackage, [subarches...], {options}].
// Any field may be a YAML alias (meph-v3.yaml's *glpae, *sa_hwe_nn,
// *kh-xgene).
type KernelRow struct {
	KRel      string
	Arch      string
	Subarch   string // the primary subarch: the product's subarch field
	Flavor    string // the kernel flavour: kflavor, and the last directory of the boot items
	KPackage  string // the kernel package: its dependencies lead to linux-image-<kver>
	Subarches []string
	// DTB is the device tree to publish as boot-dtb: a file name (as in
	// meph-v3, apm-mustang.dtb), found under /lib/firmware/<kver>/device-tree/
	// or /boot/dtbs/<kver>/, or a path in the image with {kver} for the
	// kernel version.
	DTB string
	// Suffix ends the names of the boot items' files (boot-kernel.xgene).
	Suffix string
	// KName, when set, overrides the config's kname for this row.
	KName string
	// KIHelper and DIFormat are meph2 options mephstore does not act on.
	KIHelper, DIFormat string
	// Extra keys of the row's options, written as product fields.
	Extra map[string]string
	// Line is the row's line in the config file.
	Line int
}

func (k KernelRow) String() string {
	return fmt.Sprintf("%s, %s, %s, %s, %s", k.KRel, k.Arch, k.Subarch, k.Flavor, k.KPackage)
}

// ProductSubarch is the subarch part of the row's product name: the
// subarch, with the flavour added when it is not generic, before a final
// "-edge" (hwe-24.04-lowlatency-edge), as meph2 names them.
func (k KernelRow) ProductSubarch() string {
	if k.Flavor == "generic" {
		return k.Subarch
	}
	parts := strings.Split(k.Subarch, "-")
	if parts[len(parts)-1] == "edge" {
		parts = append(parts[:len(parts)-1], k.Flavor, "edge")
	} else {
		parts = append(parts, k.Flavor)
	}
	return strings.Join(parts, "-")
}

var suffixRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._+~-]*$`) })

const rowForm = "[krel, arch, subarch, flavor, kpackage, [subarches...], {dtb: ..., suffix: ...}]"

// UnmarshalYAML reads a kernel row from its list form.
func (k *KernelRow) UnmarshalYAML(n *yaml.Node) error {
	n = deref(n)
	k.Line = n.Line
	if n.Kind != yaml.SequenceNode || len(n.Content) < 5 || len(n.Content) > 7 {
		return fmt.Errorf("line %d: a kernel row is %s", n.Line, rowForm)
	}
	names := []string{"krel", "arch", "subarch", "flavor", "kpackage"}
	var s [5]string
	for i := range 5 {
		c := deref(n.Content[i])
		if c.Kind != yaml.ScalarNode || c.ShortTag() != "!!str" || !componentRe().MatchString(c.Value) {
			return fmt.Errorf("line %d: kernel row field %d (%s): want a name like %s, got %s", c.Line, i+1, names[i], []string{"noble", "amd64", "ga-24.04", "generic", "linux-generic"}[i], describeNode(c))
		}
		s[i] = c.Value
	}
	k.KRel, k.Arch, k.Subarch, k.Flavor, k.KPackage = s[0], s[1], s[2], s[3], s[4]
	if len(n.Content) > 5 {
		c := deref(n.Content[5])
		if err := c.Decode(&k.Subarches); err != nil || len(k.Subarches) == 0 {
			return fmt.Errorf("line %d: kernel row field 6 (subarches): want a list of subarch names, got %s", c.Line, describeNode(c))
		}
	}
	if len(n.Content) > 6 {
		if err := k.options(deref(n.Content[6])); err != nil {
			return err
		}
	}
	if len(k.Subarches) == 0 {
		k.Subarches = []string{k.Subarch}
	}
	return nil
}

// options reads the row's option map.
func (k *KernelRow) options(c *yaml.Node) error {
	var opts map[string]string
	if err := c.Decode(&opts); err != nil {
		return fmt.Errorf("line %d: kernel row field 7 (options): want a map of names to strings like {dtb: apm-mustang.dtb, suffix: .xgene}, got %s", c.Line, describeNode(c))
	}
	for key, v := range opts {
		switch key {
		case "dtb":
			k.DTB = v
		case "suffix":
			if !suffixRe().MatchString(v) {
				return fmt.Errorf("line %d: kernel row option suffix %q: want a file name suffix like .xgene (letters, digits, . _ - + ~)", c.Line, v)
			}
			k.Suffix = v
		case "kname":
			k.KName = v
		case "kihelper":
			k.KIHelper = v
		case "di-format":
			k.DIFormat = v
		default:
			if k.Extra == nil {
				k.Extra = map[string]string{}
			}
			k.Extra[key] = v
		}
	}
	return nil
}

// describeNode says what a YAML node holds, for errors.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "" {
			return "an empty value"
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a map"
	}
	return "nothing"
}

// expand fills a meph2 template: %(name)s is the named field, %% a
// percent sign.
func expand(tmpl string, subs map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '%' {
			b.WriteByte(tmpl[i])
			continue
		}
		rest := tmpl[i+1:]
		if strings.HasPrefix(rest, "%") {
			b.WriteByte('%')
			i++
			continue
		}
		end := strings.Index(rest, ")s")
		if !strings.HasPrefix(rest, "(") || end < 0 {
			return "", fmt.Errorf("%q: want %%(field)s templates", tmpl)
		}
		name := rest[1:end]
		v, ok := subs[name]
		if !ok {
			return "", fmt.Errorf("%q: no field %q (there are %s)", tmpl, name, strings.Join(slices.Sorted(maps.Keys(subs)), ", "))
		}
		b.WriteString(v)
		i += end + 2
	}
	return b.String(), nil
}

// bootDir is where a row's boot items go in the tree:
// <release>/<arch>/<serial>/<kname>/<flavor>.
func (c *Config) bootDir(r *Release, k KernelRow, serial string) (string, error) {
	subs := map[string]string{
		"release": r.Release, "arch": k.Arch, "version_name": serial, "version": string(r.Version),
		"product_id_pre": c.ProductIDPre, "krel": k.KRel, "kpkg": k.KPackage, "flavor": k.Flavor,
		"psubarch": k.ProductSubarch(), "subarch": k.Subarch, "suffix": k.Suffix,
	}
	kname, err := expand(cmp.Or(k.KName, c.KName), subs)
	if err != nil {
		return "", err
	}
	if kname == "" || kname == "." || kname == ".." || strings.ContainsAny(kname, "/\\") {
		return "", fmt.Errorf("%q gives %q: want one directory name", cmp.Or(k.KName, c.KName), kname)
	}
	return r.Release + "/" + k.Arch + "/" + serial + "/" + kname + "/" + k.Flavor, nil
}

// Labelled fills a content id or product prefix for a stream's label:
// {label} is replaced; a meph2 literal (com.ubuntu.maas:candidate:... or
// com.ubuntu.maas.candidate:...) has its label part replaced.
func Labelled(tmpl, label string) string {
	if strings.Contains(tmpl, "{label}") {
		return strings.ReplaceAll(tmpl, "{label}", label)
	}
	for _, pre := range []string{"com.ubuntu.maas:", "com.ubuntu.maas."} {
		if rest, ok := strings.CutPrefix(tmpl, pre); ok {
			if _, after, ok := strings.Cut(rest, ":"); ok {
				return pre + label + ":" + after
			}
		}
	}
	return tmpl
}

// ProductName is the row's product name in a stream labelled label, as
// meph2 names it: <product_id_pre>:<version>:<arch>:<product subarch>.
func (c *Config) ProductName(label string, r *Release, k KernelRow) string {
	return strings.TrimSuffix(Labelled(c.ProductIDPre, label), ":") + ":" + string(r.Version) + ":" + k.Arch + ":" + k.ProductSubarch()
}

// Labelled is the config's content id for a stream labelled label.
func (c *Config) Labelled(label string) string { return Labelled(c.ContentID, label) }
