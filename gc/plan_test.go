package gc

import (
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
	"time"
)

// The planner's fixtures are written in a small language, one case per
// table row (in the manner of containerd's gc tests):
//
//	blobs:   names of blob records ("a b c")
//	orphans: orphan records, each name:age ("c:4d x:5d"; age before now)
//	marked:  names reachable from the roots
//	older:   the age gate
//
// and the plan is compared by name: the new orphans, the dropped records,
// what is reaped and what waits. A name is the sha256 of itself, so the
// records come in a different order from the names: the planner must not
// depend on it.
func TestSweepPlanner(t *testing.T) {
	for _, tc := range []struct {
		name                            string
		blobs, orphans, marked, older   string
		newOrphans, drop, reap, waiting string
	}{
		{name: "nothing", older: "3d"},
		{name: "all reachable", blobs: "a b c", marked: "a b c", older: "3d"},
		{name: "a new orphan waits", blobs: "a b", marked: "a", older: "3d", newOrphans: "b", waiting: "b"},
		{name: "a new orphan with --older 0s goes at once", blobs: "a b", marked: "a", older: "0s", newOrphans: "b", reap: "b"},
		{name: "old orphans go, young ones wait", blobs: "a b c", orphans: "b:4d c:1d", older: "3d", newOrphans: "a", waiting: "a c", reap: "b"},
		{name: "exactly at the gate goes", blobs: "a", orphans: "a:3d", older: "3d", reap: "a"},
		{name: "referenced again: the record goes, the blob stays", blobs: "a b", orphans: "a:9d b:9d", marked: "a", older: "3d", drop: "a", reap: "b"},
		{name: "a record whose blob is gone is dropped", blobs: "a", orphans: "x:5d y:1h", marked: "a", older: "3d", drop: "x y"},
		{name: "marked names without records change nothing", blobs: "a", marked: "a zz", older: "3d"},
		{name: "everything at once", blobs: "a b c d e", orphans: "b:4d c:1d d:9d gone:2d", marked: "a d", older: "3d",
			newOrphans: "e", drop: "d gone", reap: "b", waiting: "c e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := map[Sum]string{}
			sum := func(n string) Sum { s := Sum(sha256.Sum256([]byte(n))); names[s] = n; return s }
			now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
			var blobs []blobRec
			for _, n := range strings.Fields(tc.blobs) {
				blobs = append(blobs, blobRec{sum: sum(n), size: int64(len(n))})
			}
			var orphans []orphanRec
			for _, f := range strings.Fields(tc.orphans) {
				n, age, _ := strings.Cut(f, ":")
				d, err := ParseAge(age)
				if err != nil {
					t.Fatal(err)
				}
				orphans = append(orphans, orphanRec{sum: sum(n), since: now.Add(-d)})
			}
			marked := map[Sum]bool{}
			for _, n := range strings.Fields(tc.marked) {
				marked[sum(n)] = true
			}
			older, err := ParseAge(tc.older)
			if err != nil {
				t.Fatal(err)
			}
			bySum := func(a, b blobRec) int { return slices.Compare(a.sum[:], b.sum[:]) }
			slices.SortFunc(blobs, bySum)
			slices.SortFunc(orphans, func(a, b orphanRec) int { return slices.Compare(a.sum[:], b.sum[:]) })
			p := planSweep(blobs, orphans, func(s Sum) bool { return marked[s] }, now, older)
			entries := func(es []SweepEntry) string {
				var out []string
				for _, e := range es {
					out = append(out, names[e.Sum])
				}
				slices.Sort(out)
				return strings.Join(out, " ")
			}
			var drop []string
			for _, s := range p.DropRecords {
				drop = append(drop, names[s])
			}
			slices.Sort(drop)
			for _, c := range []struct{ what, got, want string }{
				{"new orphans", entries(p.NewOrphans), tc.newOrphans},
				{"dropped records", strings.Join(drop, " "), tc.drop},
				{"reaped", entries(p.Reap), tc.reap},
				{"waiting", entries(p.Waiting), tc.waiting},
			} {
				if c.got != c.want {
					t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
				}
			}
			if p.Blobs != len(blobs) || p.Marked+len(p.Reap)+len(p.Waiting) != p.Blobs {
				t.Errorf("counts: %d blobs, %d marked, %d reaped, %d waiting", p.Blobs, p.Marked, len(p.Reap), len(p.Waiting))
			}
			for _, e := range p.NewOrphans {
				if !e.Since.Equal(now) {
					t.Errorf("new orphan %s since %v, want now", names[e.Sum], e.Since)
				}
			}
		})
	}
}

// TestRootPlanner: the publish-root planner in the same fixture language:
// the files nothing refers to now (kind/name), their orphan records
// (name:age) and the gate, against the new orphans, the reaps, the
// records forgotten and the count of those waiting.
func TestRootPlanner(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, unref, known, older string
		orphan, reap, forget      string
		waiting                   int
	}{
		{name: "nothing", older: "3d"},
		{name: "first found", unref: "data/a products/p", older: "3d", orphan: "a p", waiting: 2},
		{name: "first found, no gate", unref: "data/a", older: "0s", orphan: "a", reap: "a"},
		{name: "old enough", unref: "data/a index/s", known: "a:4d s:3d", older: "3d", reap: "a s"},
		{name: "not yet", unref: "data/a", known: "a:2d", older: "3d", waiting: 1},
		{name: "referenced again", unref: "data/a", known: "a:4d b:1d", older: "3d", reap: "a", forget: "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var all []candidate
			for _, f := range strings.Fields(tc.unref) {
				kind, name, _ := strings.Cut(f, "/")
				all = append(all, candidate{rel: name, kind: kind, size: 1})
			}
			known := map[string]time.Time{}
			for _, f := range strings.Fields(tc.known) {
				name, age, _ := strings.Cut(f, ":")
				d, err := ParseAge(age)
				if err != nil {
					t.Fatal(err)
				}
				known[name] = now.Add(-d)
			}
			older, _ := ParseAge(tc.older)
			p := planRoot("/pub", all, known, now, now.Add(-older))
			names := func(steps []Step) string {
				var out []string
				for _, st := range steps {
					if st.Reason == "" || st.Root != "/pub" {
						t.Errorf("step %+v: no reason or root", st)
					}
					out = append(out, st.Name)
				}
				slices.Sort(out)
				return strings.Join(out, " ")
			}
			if got := names(p.Orphan); got != tc.orphan {
				t.Errorf("orphans %q, want %q", got, tc.orphan)
			}
			if got := names(p.Reap); got != tc.reap {
				t.Errorf("reap %q, want %q", got, tc.reap)
			}
			if got := strings.Join(p.Forget, " "); got != tc.forget {
				t.Errorf("forget %q, want %q", got, tc.forget)
			}
			if p.Waiting != tc.waiting {
				t.Errorf("waiting %d, want %d", p.Waiting, tc.waiting)
			}
		})
	}
}
