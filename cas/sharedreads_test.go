package cas

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// setSetting writes one setting in its own writer session.
func setSetting(t *testing.T, s *Store, name, value string) {
	t.Helper()
	if err := s.WithWriter(context.Background(), "test", func(ss *Session) error { return ss.SetSetting(name, value) }); err != nil {
		t.Fatal(err)
	}
}

func TestSharedReadsOpenTheDatabaseOnce(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	setSetting(t, s, "k", "v1")
	release := s.ShareReads()
	defer release()
	a, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.borrowed || s.shared.ss == nil || b.db != s.shared.ss.db {
		t.Fatalf("the second reader did not borrow the first one's database (borrowed %v)", b.borrowed)
	}
	if v, err := b.Setting("k"); err != nil || v != "v1" {
		t.Fatalf("setting through a borrowed reader: %q, %v", v, err)
	}
}

func TestSharedReaderKeepsOtherWritersWaitingUntilReleased(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	other, err := Open(s.Dir(), Options{Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	release := s.ShareReads()
	ss, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ss.Close() // given back, still open: the sharing goes on
	if _, err := other.Writer(ctx, "other"); !errors.Is(err, ErrLocked) {
		t.Fatalf("another store's writer while reads are shared: %v, want ErrLocked", err)
	}
	release()
	release() // a second call does nothing
	w, err := other.Writer(ctx, "other")
	if err != nil {
		t.Fatalf("writer after release: %v", err)
	}
	w.Close()
}

func TestOwnWriterEndsSharingAndLaterReadsSeeItsWrites(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	setSetting(t, s, "k", "v1")
	defer s.ShareReads()()
	vals, err := s.ReadSettings(ctx, "k")
	if err != nil || vals[0] != "v1" {
		t.Fatalf("first read: %v, %v", vals, err)
	}
	setSetting(t, s, "k", "v2") // must not wait for the process's own shared reader
	if s.shared.on || s.shared.ss != nil {
		t.Fatal("a writer session left the sharing on")
	}
	vals, err = s.ReadSettings(ctx, "k")
	if err != nil || vals[0] != "v2" {
		t.Fatalf("read after the writer: %v, %v (want v2)", vals, err)
	}
}

func TestWriterWhileABorrowedReaderIsInUse(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.wait = 5 * time.Second
	defer s.ShareReads()()
	ss, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	done := make(chan error, 1)
	go func() {
		defer wg.Done()
		done <- s.WithWriter(ctx, "w", func(w *Session) error { return w.SetSetting("k", "v") })
	}()
	// The writer ends the sharing but cannot have the database while the
	// borrowed session is open; closing it closes the shared reader.
	if v, err := ss.Setting("k"); err != nil || v != "" {
		t.Fatalf("borrowed read while a writer waits: %q, %v", v, err)
	}
	ss.Close()
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatalf("writer after the borrowed reader closed: %v", err)
	}
	if s.shared.ss != nil || s.shared.users != 0 {
		t.Fatalf("shared reader left open: users %d", s.shared.users)
	}
}
