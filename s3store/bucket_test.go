package s3store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestServerHonoursConditionalWrites proves, against the real server,
// what stream heads rely on: If-None-Match: * creates only a missing
// object, If-Match replaces only the ETag the writer read, and both
// answer 412 otherwise.
func TestServerHonoursConditionalWrites(t *testing.T) {
	_, b := testBucket(t, "store")
	ctx := context.Background()
	e1, err := b.Put(ctx, "heads/daily", []byte("one"), Cond{IfNoneMatch: true})
	if err != nil {
		t.Fatalf("create with If-None-Match: *: %v", err)
	}
	if _, err := b.Put(ctx, "heads/daily", []byte("two"), Cond{IfNoneMatch: true}); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("second create: want 412 (ErrPrecondition), got %v", err)
	}
	e2, err := b.Put(ctx, "heads/daily", []byte("two"), Cond{IfMatch: e1})
	if err != nil {
		t.Fatalf("replace with If-Match on the ETag read: %v", err)
	}
	if _, err := b.Put(ctx, "heads/daily", []byte("three"), Cond{IfMatch: e1}); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("replace over a stale ETag: want 412, got %v", err)
	}
	if _, err := b.Put(ctx, "heads/missing", []byte("x"), Cond{IfMatch: e2}); err == nil {
		t.Fatal("If-Match on a missing object succeeded")
	}
	got, etag, err := b.Get(ctx, "heads/daily", 1<<10)
	if err != nil || string(got) != "two" || etag != e2 {
		t.Fatalf("after the refused writes: %q %q %v, want \"two\" %q", got, etag, err, e2)
	}
}

// TestConditionalWritesRace: many writers race to advance one counter
// object by read, increment, If-Match write; every increment that the
// server accepted is kept (none lost), the rest got 412.
func TestConditionalWritesRace(t *testing.T) {
	_, b := testBucket(t, "")
	ctx := context.Background()
	if _, err := b.Put(ctx, "n", []byte{0}, Cond{IfNoneMatch: true}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	won, lost := 0, 0
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				v, etag, err := b.Get(ctx, "n", 8)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = b.Put(ctx, "n", []byte{v[0] + 1}, Cond{IfMatch: etag})
				mu.Lock()
				switch {
				case err == nil:
					won++
				case errors.Is(err, ErrPrecondition):
					lost++
				default:
					t.Error(err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	v, _, err := b.Get(ctx, "n", 8)
	if err != nil {
		t.Fatal(err)
	}
	if int(v[0]) != won || won+lost != 80 || won == 0 {
		t.Fatalf("counter %d, accepted writes %d, refused %d: an accepted update was lost", v[0], won, lost)
	}
	t.Logf("accepted %d, refused with 412 %d", won, lost)
}

// A lock whose key the server refuses with a conflict (409: here a
// "directory" of versitygw's posix backend, which a put racing a delete
// can also meet) is tried a few times, then fails with the server's
// answer: not a hang, not "locked".
func TestLockGivesUpOnALastingConflict(t *testing.T) {
	_, b := testBucket(t, "store")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := b.Put(ctx, ".locks/store/x/child", []byte("x"), Cond{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := b.Lock(ctx, ".locks", "store", true)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("lock over a directory key: %v, want ErrConflict", err)
	}
	if errors.Is(err, ErrLocked) || time.Since(start) > 30*time.Second {
		t.Fatalf("gave up as locked or too late (%v): %v", time.Since(start), err)
	}
	// It tried again: the back-off between its tries adds up to 620 ms.
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Fatalf("gave up after %v: no retry", took)
	}
	release, err := b.Lock(ctx, ".locks", "other", true)
	if err != nil {
		t.Fatalf("a lock with no conflict: %v", err)
	}
	release()
}
