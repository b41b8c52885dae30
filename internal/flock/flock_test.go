package flock

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExclusiveBlocksAndNamesHolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	ctx := context.Background()
	h := &Holder{PID: 4242, Host: "builder1", Since: time.Now(), Operation: "ingest"}
	l, err := Acquire(ctx, p, "store /s", Exclusive, 0, h)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(ctx, p, "store /s", Exclusive, 30*time.Millisecond, nil)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second exclusive lock: %v, want ErrLocked", err)
	}
	for _, want := range []string{"store /s locked by pid 4242", "host builder1", "(ingest)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := Acquire(ctx, p, "store /s", Shared, 0, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("shared lock under an exclusive one: %v, want ErrLocked", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(ctx, p, "store /s", Exclusive, 0, nil)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Unlock()
}

func TestSharedLocksCoexist(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	ctx := context.Background()
	a, err := Acquire(ctx, p, "db", Shared, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(ctx, p, "db", Shared, 0, nil)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if _, err := Acquire(ctx, p, "db", Exclusive, 0, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive under shared: %v", err)
	}
	a.Unlock()
	b.Unlock()
}

func TestWaitEndsWhenHolderReleases(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	ctx := context.Background()
	l, err := Acquire(ctx, p, "x", Exclusive, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		l2, err := Acquire(ctx, p, "x", Exclusive, time.Minute, nil)
		if err == nil {
			l2.Unlock()
		}
		got <- err
	}()
	l.Unlock()
	if err := <-got; err != nil {
		t.Fatalf("waiter: %v", err)
	}
}

func TestCancelledWait(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	l, _ := Acquire(context.Background(), p, "x", Exclusive, 0, nil)
	defer l.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Acquire(ctx, p, "x", Exclusive, time.Minute, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
