package cas

import (
	"context"
	"errors"
	"testing"
)

func TestStagerStagesInOrderAndCommits(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	g := s.NewStager(ctx)
	var want []Expect
	for i := range 40 { // more than the queue holds
		b := randBytes(100+i, uint64(i))
		exp := Expect{Size: int64(len(b)), Digest: sha(b)}
		want = append(want, exp)
		if err := g.Add(b, exp); err != nil {
			t.Fatal(err)
		}
	}
	staged, err := g.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(staged) != len(want) {
		t.Fatalf("staged %d blobs, want %d", len(staged), len(want))
	}
	for i, st := range staged {
		if st.Digest != want[i].Digest || st.Size != want[i].Size {
			t.Fatalf("blob %d: staged %s (%d bytes), want %s (%d)", i, st.Digest, st.Size, want[i].Digest, want[i].Size)
		}
	}
	ss, err := s.Writer(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	if _, err := ss.Commit(ctx, staged...); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, s.ingestPath()); len(got) != 0 {
		t.Fatalf("temp files left after the commit: %v", got)
	}
	if _, err := s.ReadBlob(want[39].Digest); err != nil {
		t.Fatal(err)
	}
}

func TestStagerMismatchFailsAndLeavesNothing(t *testing.T) {
	s := newStore(t)
	g := s.NewStager(context.Background())
	good := randBytes(64, 1)
	if err := g.Add(good, Expect{Size: 64, Digest: sha(good)}); err != nil {
		t.Fatal(err)
	}
	bad := randBytes(64, 2)
	if err := g.Add(bad, Expect{Size: 64, Digest: sha(good)}); err != nil {
		t.Fatal(err) // may or may not have failed yet; Wait must say
	}
	// Adds after the failure either fail at once or are dropped; Wait
	// reports the mismatch either way.
	for i := range 20 {
		b := randBytes(64, uint64(10+i))
		if err := g.Add(b, Expect{Size: 64, Digest: sha(b)}); err != nil {
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("Add after a failure: %v, want ErrDigestMismatch", err)
			}
			break
		}
	}
	staged, err := g.Wait()
	if !errors.Is(err, ErrDigestMismatch) || staged != nil {
		t.Fatalf("Wait = %d staged, %v; want none and ErrDigestMismatch", len(staged), err)
	}
	if got := entries(t, s.ingestPath()); len(got) != 0 {
		t.Fatalf("temp files left after a failed staging: %v", got)
	}
}

func TestStagerDiscardRemovesEverything(t *testing.T) {
	s := newStore(t)
	g := s.NewStager(context.Background())
	for i := range 10 {
		b := randBytes(32, uint64(i))
		if err := g.Add(b, Expect{Size: 32, Digest: sha(b)}); err != nil {
			t.Fatal(err)
		}
	}
	g.Discard()
	if got := entries(t, s.ingestPath()); len(got) != 0 {
		t.Fatalf("temp files left after Discard: %v", got)
	}
	// Empty again: a Wait returns nothing.
	if staged, err := g.Wait(); err != nil || len(staged) != 0 {
		t.Fatalf("Wait after Discard = %d, %v", len(staged), err)
	}
}

func TestStagerStopsOnCancel(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	g := s.NewStager(ctx)
	cancel()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		b := randBytes(32, uint64(i))
		err = g.Add(b, Expect{Size: 32, Digest: sha(b)})
	}
	_, werr := g.Wait()
	if !errors.Is(err, context.Canceled) && !errors.Is(werr, context.Canceled) {
		t.Fatalf("Add = %v, Wait = %v; want context.Canceled from one", err, werr)
	}
	if got := entries(t, s.ingestPath()); len(got) != 0 {
		t.Fatalf("temp files left after a cancel: %v", got)
	}
}
