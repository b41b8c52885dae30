package gc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/snapshot"
)

const day = 24 * time.Hour

// TestKeepsExactlyTheRoots: given streams with histories, a lease, a
// pending build and loose blobs, gc keeps exactly what the roots reach, and
// deletes the rest only after the age gate.
func TestKeepsExactlyTheRoots(t *testing.T) {
	f := newFixture(t)
	f.blob("d1", "d2", "d3", "d4", "d5", "loose", "leased", "pending")
	s1 := f.commit("daily", "s1", f.product("p-s1", "d1", "d2"))
	f.commit("daily", "s2", f.product("p-s2", "d1", "d3"))
	f.commit("daily", "s3", f.product("p-s3", "d3", "d4"))
	f.commit("stable", "s4", f.product("p-s4", "d5"))
	// A lease (of an ingest) holding "leased", and a pending build.
	var lease *cas.Lease
	f.writer(func(ss *cas.Session) {
		var err error
		if lease, err = ss.CreateLease("ingest", 30*time.Minute, nil); err != nil {
			t.Fatal(err)
		}
		if err := ss.AddRefs(lease, cas.Ref{Kind: cas.RefBlob, Digest: f.data["leased"]}); err != nil {
			t.Fatal(err)
		}
		if err := ss.Update(func(txn cas.Txn) error {
			return cas.PendingBuilds().Put(txn, [8]byte{1}, []cas.Ref{{Kind: cas.RefBlob, Digest: f.data["pending"]}})
		}); err != nil {
			t.Fatal(err)
		}
	})
	before := f.present()

	// First run: keep-history 2 keeps s2 and s3 of daily; s1, its product,
	// d2 and the loose blob are unreachable: recorded, not deleted.
	rep := f.gc(Options{Older: 3 * day, KeepHistory: 2})
	wantOrphans := []string{"d2", "loose", "product p-s1", "snapshot s1"}
	// The empty snapshots of the two stream creations are out of the
	// retained history too.
	if rep.NewOrphans != len(wantOrphans)+1 || rep.Reaped != 0 || f.orphans() != rep.NewOrphans {
		t.Fatalf("first run: %+v (records %d)", rep, f.orphans())
	}
	if got := f.present(); !reflect.DeepEqual(got, before) {
		t.Fatalf("first run deleted %v", gone(before, got))
	}
	if rep.Leases != 1 || rep.PendingBuilds != 1 || rep.Streams != 2 || rep.RootSnapshots != 4 {
		t.Fatalf("roots: %+v", rep)
	}

	// Inside the age gate nothing goes; a dry run at the gate plans exactly
	// the deletes and changes nothing.
	// The lease lapsed meanwhile (30 minutes without renewal): "leased"
	// is an orphan from now on, and the lease record goes.
	f.at(3*day - time.Second)
	if rep := f.gc(Options{Older: 3 * day}); rep.Reaped != 0 || rep.LeasesDropped != 1 || rep.NewOrphans != 1 {
		t.Fatalf("reaped inside the age gate, or the lapsed lease: %+v", rep)
	}
	f.at(2 * time.Second)
	var planned []string
	rep = f.gc(Options{Older: 3 * day, DryRun: true, Plan: func(a Action) {
		if a.Kind == "reap" {
			planned = append(planned, a.Name)
		}
	}})
	if got := f.present(); !reflect.DeepEqual(got, before) || rep.Reaped != 5 || len(planned) != 5 {
		t.Fatalf("dry run: %+v, planned %v, deleted %v", rep, planned, gone(before, got))
	}
	rep = f.gc(Options{Older: 3 * day})
	got := gone(before, f.present())
	var gotNamed []string
	for _, g := range got {
		if !strings.HasPrefix(g, "unnamed") {
			gotNamed = append(gotNamed, g)
		}
	}
	if !reflect.DeepEqual(gotNamed, wantOrphans) || len(got) != 5 || rep.Reaped != 5 {
		t.Fatalf("reaped %v (%+v), want %v and the empty snapshot", got, rep, wantOrphans)
	}
	if rep.NewOrphans != 0 || rep.Waiting != 1 {
		t.Fatalf("the lapsed lease's blob: %+v", rep)
	}
	if slices.Contains(f.present(), "leased") == false {
		t.Fatal("the blob of a lapsed lease went without waiting out the age gate")
	}
	f.fsck()
	// Rollback to s1 is no longer possible, and says why.
	if _, err := f.r.Rollback(ctx, "daily", s1.Encoded(), 0, false); err == nil {
		t.Fatal("rolled back to a reaped snapshot")
	}
	// Rollback within the kept history works.
	if _, err := f.r.Rollback(ctx, "daily", "", 1, false); err != nil {
		t.Fatal(err)
	}
	f.at(3*day + time.Second)
	f.gc(Options{Older: 3 * day})
	if p := f.present(); slices.Contains(p, "leased") || !slices.Contains(p, "pending") || !slices.Contains(p, "d4") {
		t.Fatalf("after the lease's age gate: %v", p)
	}
	f.fsck()
}

// TestRereferencedLosesItsRecord: an orphan referenced again before its age
// gate loses its record, and its clock starts again when it is dropped.
func TestRereferencedLosesItsRecord(t *testing.T) {
	f := newFixture(t)
	f.blob("x")
	f.gc(Options{Older: 3 * day, KeepHistory: 1})
	if f.orphans() != 1 {
		t.Fatalf("records %d", f.orphans())
	}
	f.at(2 * day)
	f.commit("daily", "uses x", f.product("px", "x"))
	rep := f.gc(Options{Older: 3 * day})
	if rep.Rereferenced != 1 || f.orphans() != 1 { // the stream's empty first snapshot
		t.Fatalf("%+v, records %d", rep, f.orphans())
	}
	f.at(day)
	f.commit("daily", "drops x")
	f.gc(Options{Older: 3 * day}) // x orphaned again, now
	f.at(2 * day)
	f.gc(Options{Older: 3 * day})
	if !slices.Contains(f.present(), "x") {
		t.Fatal("x reaped before 3 days since it was dropped")
	}
	f.at(day + time.Second)
	f.gc(Options{Older: 3 * day})
	if slices.Contains(f.present(), "x") {
		t.Fatal("x kept after its age gate")
	}
}

// TestOperationLeaseKeepsWhatItMayRead: while a snapshot operation's lease
// lives, every head since it was taken stays a root, even once out of the
// kept history.
func TestOperationLeaseKeepsWhatItMayRead(t *testing.T) {
	f := newFixture(t)
	f.commit("daily", "a", f.product("pa", "a"))
	lctx, release, err := f.r.Hold(ctx, "promote daily stable")
	if err != nil {
		t.Fatal(err)
	}
	_ = lctx
	for _, l := range []string{"b", "c", "d"} {
		f.commit("daily", l, f.product("p"+l, l))
	}
	f.gc(Options{Older: 0, KeepHistory: 1})
	if p := f.present(); !slices.Contains(p, "a") || !slices.Contains(p, "b") {
		t.Fatalf("a head read under a live lease was reaped: %v", p)
	}
	release()
	f.gc(Options{Older: 0, KeepHistory: 1})
	if p := f.present(); slices.Contains(p, "a") || slices.Contains(p, "b") || !slices.Contains(p, "d") {
		t.Fatalf("after the release: %v", p)
	}
	f.fsck()
}

// TestRefusesOnUnreadableRoot: a retained snapshot whose product blob is
// gone stops gc before it records or deletes anything.
func TestRefusesOnUnreadableRoot(t *testing.T) {
	f := newFixture(t)
	f.blob("loose")
	p := f.product("p", "d")
	f.commit("daily", "s", p)
	f.gc(Options{Older: 0})
	f.blob("loose2")
	before, records := f.present(), f.orphans()
	os.Chmod(f.s.BlobPath(p.Digest), 0o644)
	if err := os.WriteFile(f.s.BlobPath(p.Digest), []byte("{}"), 0o444); err != nil {
		t.Fatal(err)
	}
	_, err := Run(ctx, f.r, Options{Older: 0})
	if err == nil || !strings.Contains(err.Error(), "refusing") || !errors.Is(err, cas.ErrCorrupt) {
		t.Fatalf("got %v", err)
	}
	if got := f.present(); !reflect.DeepEqual(got, before) || f.orphans() != records {
		t.Fatalf("a refused gc changed things: deleted %v", gone(before, got))
	}
}

// TestReportJSON: the figures have stable names.
func TestReportJSON(t *testing.T) {
	f := newFixture(t)
	f.blob("a", "b")
	rep := f.gc(Options{Older: 0})
	b, _ := json.Marshal(rep)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"marked", "new_orphans", "reaped", "bytes_freed", "seconds", "blobs"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	if rep.Reaped != 2 || rep.Freed != int64(len("data a")+len("data b")) {
		t.Fatalf("%+v", rep)
	}
	_ = snapshot.DocFormat
}

func TestParseAge(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"3d", 3 * day}, {"1d12h", 36 * time.Hour}, {"90m", 90 * time.Minute}, {"0s", 0},
		{"1w", 7 * day}, {"2h30m15s", 2*time.Hour + 30*time.Minute + 15*time.Second}, {"1d1d", 2 * day},
	} {
		got, err := ParseAge(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, _ := ParseAge(FormatAge(got)); back != got {
			t.Errorf("FormatAge(%v) = %q does not read back", got, FormatAge(got))
		}
	}
	for _, bad := range []string{"", "3", "1.5d", "3x", "-1d", "d", "3d ", " 3d", "1d-2h", "99999999999999999999d", "3D"} {
		if got, err := ParseAge(bad); err == nil || !errors.Is(err, ErrBadAge) {
			t.Errorf("ParseAge(%q) = %v, %v; want an error", bad, got, err)
		}
	}
}

// TestExecuteRechecksThePlan: a plan is made, then a stream takes up a
// blob the plan reaps and another the plan records as an orphan; executing
// the plan deletes neither and records neither, and deletes the rest.
func TestExecuteRechecksThePlan(t *testing.T) {
	f := newFixture(t)
	f.blob("old", "kept", "other")
	f.gc(Options{Older: day, KeepHistory: 1})
	f.at(2 * day)
	f.blob("new")
	plan, err := MakePlan(ctx, f.r, Options{Older: day, KeepHistory: 1})
	if err != nil {
		t.Fatal(err)
	}
	names := func(steps []Step) (out []string) {
		for _, st := range steps {
			out = append(out, f.names[digest.Digest(st.Name)])
		}
		slices.Sort(out)
		return out
	}
	if got := names(plan.Reap); !reflect.DeepEqual(got, []string{"kept", "old", "other"}) {
		t.Fatalf("plan reaps %v", got)
	}
	if got := names(plan.Orphan); !reflect.DeepEqual(got, []string{"new"}) || plan.Orphan[0].Reason == "" {
		t.Fatalf("plan records %v", plan.Orphan)
	}
	f.commit("daily", "takes up kept and new", f.product("p", "kept", "new"))
	rep, err := execute(ctx, f.r, plan, Options{Older: day})
	if err != nil {
		t.Fatal(err)
	}
	p := f.present()
	if !slices.Contains(p, "kept") || !slices.Contains(p, "new") || slices.Contains(p, "old") || slices.Contains(p, "other") {
		t.Fatalf("after execute: %v (%+v)", p, rep)
	}
	// No record for "new"; the records of the reaped went with them;
	// "kept" keeps its stale record until the next run drops it.
	if f.orphans() != 1 {
		t.Fatalf("%d orphan records", f.orphans())
	}
	if rep := f.gc(Options{Older: day}); rep.Rereferenced != 1 {
		t.Fatalf("next run: %+v", rep)
	}
	f.fsck()
}

// gc, the scheduled maintenance, merges the level-0 tables that every
// writer session since its last run left in the records' database.
func TestMergesTheRecordsTree(t *testing.T) {
	f := newFixture(t)
	for i := range 6 {
		f.commit("daily", fmt.Sprint("c", i), f.product(fmt.Sprint("p", i), fmt.Sprint("x", i)))
	}
	tables := func() int {
		ss, err := f.s.Reader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		return ss.LevelZeroTables()
	}
	if n := tables(); n < 6 {
		t.Fatalf("%d level-0 tables after 6 commits: the test no longer makes any", n)
	}
	f.gc(Options{Older: 3 * day})
	if n := tables(); n > 1 {
		t.Fatalf("%d level-0 tables after gc", n)
	}
}
