package cloudsync

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/cloudgen"
	"github.com/mephstore/mephstore/snapshot"
)

func reasons(p *Plan) []string {
	var out []string
	for _, b := range p.Builds {
		out = append(out, b.Release+"/"+b.Arch+"/"+b.Version+":"+b.Reason)
	}
	slices.Sort(out)
	return out
}

func TestPlanAndIdempotence(t *testing.T) {
	u := serveUpstream(t, cloudgen.Spec{Releases: []string{"noble", "jammy"}, Arches: []string{"amd64", "arm64"},
		Versions: []string{"20261201", "20261202", "20261203"}}, nil)
	r := newRepo(t, "daily")
	o := u.options(t, true)
	o.DryRun = true
	rep, err := Run(ctx, r, o)
	if err != nil {
		t.Fatal(err)
	}
	// --max 1: the newest version of each product of ours; jammy/arm64
	// has no kernel row.
	want := []string{"jammy/amd64/20261203:new", "noble/amd64/20261203:new", "noble/arm64/20261203:new"}
	if got := reasons(rep.Plan); !slices.Equal(got, want) {
		t.Fatalf("plan %v, want %v", got, want)
	}
	for _, b := range rep.Plan.Builds {
		if b.SHA256 == "" || b.Size <= 0 || b.FType != "squashfs" || !strings.HasSuffix(b.URL, ".squashfs") {
			t.Fatalf("plan entry %+v", b)
		}
	}
	if versionsOf(t, r, "daily") != nil {
		t.Fatal("a dry run changed the stream")
	}
	o.DryRun = false
	rep, err = Run(ctx, r, o)
	if err != nil || len(rep.Built) != 3 || len(rep.Failed) != 0 || rep.Committed == nil {
		t.Fatalf("sync: %+v %v", rep, err)
	}
	if n := len(versionsOf(t, r, "daily")); n != 3 {
		t.Fatalf("%d versions in daily, want 3", n)
	}
	seq := head(t, r).Seq
	// Again: nothing new upstream, nothing built, no snapshot.
	rep, err = Run(ctx, r, o)
	if err != nil || len(rep.Plan.Builds) != 0 || len(rep.Built) != 0 || rep.Plan.UpToDate != 3 {
		t.Fatalf("second sync: %+v %v", rep.Plan, err)
	}
	if head(t, r).Seq != seq {
		t.Fatal("a sync with nothing to do made a snapshot")
	}
}

func head(t testing.TB, r *snapshot.Repo) *snapshot.Stream {
	st, err := r.Stream(ctx, "daily")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPlanOptions(t *testing.T) {
	u := serveUpstream(t, cloudgen.Spec{Releases: []string{"noble", "jammy"}, Arches: []string{"amd64", "arm64"},
		Versions: []string{"20261201", "20261202", "20261203"}, TarOnly: []string{"20261202"}}, nil)
	for _, tc := range []struct {
		name    string
		opts    func(*PlanOptions)
		filters []string
		want    []string
	}{
		{"max 2", func(p *PlanOptions) { p.Max = 2 }, nil,
			[]string{"jammy/amd64/20261202:new", "jammy/amd64/20261203:new", "noble/amd64/20261202:new", "noble/amd64/20261203:new", "noble/arm64/20261202:new", "noble/arm64/20261203:new"}},
		{"arches", func(p *PlanOptions) { p.Arches = []string{"arm64"} }, nil, []string{"noble/arm64/20261203:new"}},
		{"filters", nil, []string{"release=noble", "arch=amd64"}, []string{"noble/amd64/20261203:new"}},
		{"version filter", func(p *PlanOptions) { p.Max = 9 }, []string{"version_name<=20261201", "release~^no"},
			[]string{"noble/amd64/20261201:new", "noble/arm64/20261201:new"}},
		{"rebuild", func(p *PlanOptions) { p.Rebuilds = []Rebuild{{"20261201", "20261201.1"}} }, []string{"release=noble", "arch=amd64"},
			[]string{"noble/amd64/20261201.1:rebuild", "noble/amd64/20261203:new"}},
		{"force", func(p *PlanOptions) { p.Force = true }, []string{"arch=arm64"}, []string{"noble/arm64/20261203:forced"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, "daily")
			o := u.options(t, true)
			o.DryRun = true
			if tc.opts != nil {
				tc.opts(&o.Plan)
			}
			fs, err := catalog.ParseFilters(tc.filters)
			if err != nil {
				t.Fatal(err)
			}
			o.Plan.Filters = fs
			rep, err := Run(ctx, r, o)
			if err != nil {
				t.Fatal(err)
			}
			if got := reasons(rep.Plan); !slices.Equal(got, tc.want) {
				t.Fatalf("plan %v, want %v", got, tc.want)
			}
			for _, b := range rep.Plan.Builds {
				if b.Upstream == "20261202" && b.FType != "tar.gz" {
					t.Fatalf("20261202 has no squashfs: %+v", b)
				}
			}
		})
	}
	r := newRepo(t, "daily")
	o := u.options(t, true)
	o.DryRun = true
	o.Plan.Rebuilds = []Rebuild{{"20251231", "20251231.1"}}
	if _, err := Run(ctx, r, o); !errors.Is(err, ErrBadRebuild) || !strings.Contains(err.Error(), "20251231") {
		t.Fatalf("a rebuild of a version the source lacks: %v", err)
	}
}

func TestParseRebuild(t *testing.T) {
	if rb, err := ParseRebuild("20261201:20261201.1"); err != nil || rb != (Rebuild{"20261201", "20261201.1"}) {
		t.Fatalf("%+v %v", rb, err)
	}
	for _, bad := range []string{"", "20261201", "20261201:", ":20261201", "x:y", "20261201:20261201", "20261201:../x"} {
		if _, err := ParseRebuild(bad); !errors.Is(err, ErrBadRebuild) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
