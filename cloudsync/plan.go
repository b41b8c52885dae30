package cloudsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/snapshot"
)

// Reasons a plan gives for an entry.
const (
	ReasonNew     = "new"     // an upstream version the stream lacks
	ReasonRebuild = "rebuild" // --rebuild FROM:TO
	ReasonForced  = "forced"  // --target force
	ReasonInvalid = "invalid" // cannot be built: Error says why
)

// ErrBadRebuild is wrapped when a --rebuild value is malformed or names a
// version the source does not have.
var ErrBadRebuild = errors.New("bad --rebuild")

// Build is one entry of a plan: an upstream image to build under a
// target version name.
type Build struct {
	Release  string `json:"release"`
	Arch     string `json:"arch"`
	Product  string `json:"upstream_product"`
	Upstream string `json:"upstream_version"`
	Version  string `json:"version"` // the version name in the stream
	URL      string `json:"source_url"`
	Path     string `json:"source_path"`
	FType    string `json:"ftype"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	MD5      string `json:"md5,omitempty"`
	Reason   string `json:"reason"`
	Error    string `json:"error,omitempty"` // for ReasonInvalid
}

func (b *Build) String() string {
	return fmt.Sprintf("%s %s %s", b.Release, b.Arch, b.Version)
}

// Plan is what a sync will do.
type Plan struct {
	Source   string   `json:"source"`
	Stream   string   `json:"stream"`
	Builds   []Build  `json:"builds"`
	UpToDate int      `json:"up_to_date"` // candidate versions the stream has
	Warnings []string `json:"warnings,omitempty"`
}

// Rebuild is a --rebuild FROM:TO.
type Rebuild struct{ From, To string }

// ParseRebuild reads FROM:TO (20260101:20260101.1): both serials.
func ParseRebuild(s string) (Rebuild, error) {
	from, to, ok := strings.Cut(s, ":")
	if !ok {
		return Rebuild{}, fmt.Errorf("--rebuild %q: %w: want FROM:TO, like 20260101:20260101.1", s, ErrBadRebuild)
	}
	for _, v := range []string{from, to} {
		if err := build.CheckSerial(v); err != nil {
			return Rebuild{}, fmt.Errorf("--rebuild %q: %w: %w", s, ErrBadRebuild, err)
		}
	}
	if from == to {
		return Rebuild{}, fmt.Errorf("--rebuild %q: %w: TO must differ from FROM", s, ErrBadRebuild)
	}
	return Rebuild{from, to}, nil
}

// target is what the stream has: release version, arch and serial.
type target map[string]bool

func targetKey(relVersion, arch, serial string) string {
	return relVersion + "\x00" + arch + "\x00" + serial
}

// readTarget lists the versions the stream's head and its pending builds
// hold, by release version, arch and serial.
func readTarget(ctx context.Context, r *snapshot.Repo, st *snapshot.Stream, cfg *build.Config) (target, error) {
	t := target{}
	doc, err := r.Doc(st.Head)
	if err != nil {
		return nil, err
	}
	prefix := st.ProductPrefix()
	for _, c := range doc.Catalogs {
		for _, p := range c.Products {
			rest, ok := strings.CutPrefix(p.Name, prefix)
			if !ok {
				continue
			}
			f := strings.Split(rest, ":") // <version>:<arch>:<subarch>
			if len(f) < 3 {
				continue
			}
			for _, v := range p.VersionNames {
				t[targetKey(f[0], f[1], v)] = true
			}
		}
	}
	ss, err := r.Store().Reader(ctx)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	pend, err := build.ListPending(ss)
	if err != nil {
		return nil, err
	}
	for _, p := range pend {
		if p.Stream != st.Name {
			continue
		}
		if rel, err := cfg.Release(p.Release); err == nil {
			t[targetKey(string(rel.Version), p.Arch, p.Serial)] = true
		}
	}
	return t, nil
}

// upstreamProduct is a source product of a release and arch asked for.
type upstreamProduct struct {
	cat      *snapshot.SourceCatalog
	product  *catalog.Product
	release  *build.Release
	arch     string
	versions []catalog.Version // newest first
}

// selectProducts keeps the source products of config releases and the
// arches asked for, and warns of config releases the source lacks.
func selectProducts(cats []snapshot.SourceCatalog, cfg *build.Config, arches []string, plan *Plan) ([]upstreamProduct, error) {
	var out []upstreamProduct
	seen := map[string]bool{}
	for ci := range cats {
		sc := &cats[ci]
		for _, pf := range sc.Products {
			p, err := catalog.ParseProduct(pf.Key, pf.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sc.Path, err)
			}
			relName, arch := catalog.StringField(p.Fields, "release"), catalog.StringField(p.Fields, "arch")
			rel, err := cfg.Release(relName)
			if err != nil || !slices.Contains(arches, arch) || len(rel.Rows(arch)) == 0 {
				continue // not a release, or an arch, of ours
			}
			seen[relName] = true
			vs := slices.Clone(p.Versions)
			slices.SortFunc(vs, func(a, b catalog.Version) int { return catalog.CompareVersions(b.Name, a.Name) })
			out = append(out, upstreamProduct{cat: sc, product: p, release: rel, arch: arch, versions: vs})
		}
	}
	for _, r := range cfg.Releases {
		if !seen[r.Release] {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("release %s of the config: the source has no product of it for %s", r.Release, strings.Join(arches, ",")))
		}
	}
	slices.SortFunc(out, func(a, b upstreamProduct) int {
		return cmp.Or(strings.Compare(a.release.Release, b.release.Release), strings.Compare(a.arch, b.arch), strings.Compare(a.product.Name, b.product.Name))
	})
	return out, nil
}

// PlanOptions say what to plan.
type PlanOptions struct {
	Arches   []string
	Filters  []catalog.Filter
	Max      int // newest versions per product considered; 0 means 1
	Rebuilds []Rebuild
	Force    bool // as if the stream had nothing
}

// MakePlan computes the plan from the source catalogs (read and verified
// by the caller) and the stream. It changes nothing.
func MakePlan(ctx context.Context, r *snapshot.Repo, st *snapshot.Stream, cfg *build.Config, src *snapshot.Source, cats []snapshot.SourceCatalog, o PlanOptions) (*Plan, error) {
	plan := &Plan{Source: src.String(), Stream: st.Name, Builds: []Build{}}
	t := target{}
	if !o.Force {
		var err error
		if t, err = readTarget(ctx, r, st, cfg); err != nil {
			return nil, err
		}
	}
	ups, err := selectProducts(cats, cfg, o.Arches, plan)
	if err != nil {
		return nil, err
	}
	max := cmp.Or(o.Max, 1)
	rebuildFound := map[string]bool{}
	for i := range ups {
		up := &ups[i]
		n := 0
		for vi := range up.versions {
			v := &up.versions[vi]
			if !catalog.VersionMatches(o.Filters, up.cat.Header, up.product, v) {
				continue
			}
			if n < max {
				n++
				plan.add(up, v, v.Name, t, o.Force)
			}
			for _, rb := range o.Rebuilds {
				if rb.From == v.Name {
					rebuildFound[rb.From] = true
					plan.addRebuild(up, v, rb.To, t)
				}
			}
		}
	}
	for i := range plan.Builds {
		if b := &plan.Builds[i]; b.Path != "" {
			b.URL = src.Location(b.Path)
		}
	}
	for _, rb := range o.Rebuilds {
		if !rebuildFound[rb.From] {
			return nil, fmt.Errorf("--rebuild %s:%s: %w: no selected upstream product has version %s", rb.From, rb.To, ErrBadRebuild, rb.From)
		}
	}
	return plan, nil
}

func (p *Plan) add(up *upstreamProduct, v *catalog.Version, name string, t target, force bool) {
	if t[targetKey(string(up.release.Version), up.arch, name)] {
		p.UpToDate++
		return
	}
	reason := ReasonNew
	if force {
		reason = ReasonForced
	}
	p.Builds = append(p.Builds, newBuild(up, v, name, reason))
}

func (p *Plan) addRebuild(up *upstreamProduct, v *catalog.Version, to string, t target) {
	if t[targetKey(string(up.release.Version), up.arch, to)] {
		p.UpToDate++
		return
	}
	p.Builds = append(p.Builds, newBuild(up, v, to, ReasonRebuild))
}

// newBuild picks the version's image (its squashfs, else its tar.gz) and
// checks what the build needs of it.
func newBuild(up *upstreamProduct, v *catalog.Version, name, reason string) Build {
	b := Build{Release: up.release.Release, Arch: up.arch, Product: up.product.Name, Upstream: v.Name, Version: name, Reason: reason}
	invalid := func(err error) Build {
		b.Reason, b.Error = ReasonInvalid, err.Error()
		return b
	}
	if err := build.CheckSerial(name); err != nil {
		return invalid(err)
	}
	it := pickItem(v)
	if it == nil {
		return invalid(errors.New("no squashfs or tar.gz item"))
	}
	s := catalog.Scope{Header: up.cat.Header, Product: up.product, Version: v, Item: it}
	f, err := snapshot.ReadItemFile(&s)
	if err != nil {
		return invalid(fmt.Errorf("item %s: %w", it.Name, err))
	}
	b.Path, b.SHA256, b.Size, b.FType, b.MD5 = f.Path, f.SHA256, f.Size, s.Text("ftype"), s.Text("md5")
	return b
}

// pickItem is the version's squashfs item, else its tar.gz, as
// meph2-cloudimg-sync picks.
func pickItem(v *catalog.Version) *catalog.Item {
	for _, ft := range []string{"squashfs", "tar.gz"} {
		for i := range v.Items {
			if catalog.StringField(v.Items[i].Fields, "ftype") == ft {
				return &v.Items[i]
			}
		}
	}
	return nil
}
