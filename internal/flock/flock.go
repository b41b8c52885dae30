package flock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned (wrapped in a *LockedError) when the lock could not
// be taken before the deadline.
var ErrLocked = errors.New("locked")

// Holder describes the process holding an exclusive lock.
type Holder struct {
	PID       int       `json:"pid"`
	Host      string    `json:"host"`
	Since     time.Time `json:"since"`
	Operation string    `json:"operation"`
}

// LockedError says who holds the lock we waited for.
type LockedError struct {
	What   string  // what was locked, e.g. "store /var/lib/mephstore"
	Holder *Holder // nil when unknown (a reader, or the holder wrote nothing yet)
	Waited time.Duration
}

func (e *LockedError) Error() string {
	if e.Holder == nil {
		return fmt.Sprintf("%s locked by another process (waited %s)", e.What, e.Waited.Round(time.Millisecond))
	}
	h := e.Holder
	return fmt.Sprintf("%s locked by pid %d on host %s since %s (%s); waited %s",
		e.What, h.PID, h.Host, h.Since.Local().Format(time.DateTime), h.Operation, e.Waited.Round(time.Millisecond))
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is a held lock. Release it with Unlock.
type Lock struct {
	f *os.File
}

// Mode selects a shared or an exclusive lock.
type Mode int

const (
	Shared Mode = iota
	Exclusive
)

// pollInterval is how often a waiting process retries. flock has no
// timeout of its own; a short poll keeps the wait cancellable.
const pollInterval = 20 * time.Millisecond

// Acquire locks path (created if missing) in the given mode, retrying until
// wait has passed or ctx is done. With an exclusive lock and a non-nil
// holder, the holder is written into the file for others to read.
func Acquire(ctx context.Context, path, what string, mode Mode, wait time.Duration, holder *Holder) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	how := unix.LOCK_SH
	if mode == Exclusive {
		how = unix.LOCK_EX
	}
	start := time.Now()
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Since(start) >= wait {
			h := readHolder(f)
			f.Close()
			return nil, &LockedError{What: what, Holder: h, Waited: time.Since(start)}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock on %s: %w", what, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
	if mode == Exclusive && holder != nil {
		b, _ := json.Marshal(holder)
		// The holder record is advisory and only ever read by processes that
		// failed to get the lock; it is rewritten by each new holder.
		if err := f.Truncate(0); err == nil {
			f.WriteAt(append(b, '\n'), 0)
		}
	}
	return &Lock{f: f}, nil
}

// TryExclusive takes an exclusive lock on an already open file without
// waiting. It reports false when another open file holds a lock on it.
func TryExclusive(f *os.File) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return false, err
}

func readHolder(f *os.File) *Holder {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	if err != nil || len(b) == 0 {
		return nil
	}
	var h Holder
	if json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return nil
	}
	return &h
}

// Unlock releases the lock. The holder record is left in place; it is only
// read by a process that fails to get the lock, so a stale one is harmless.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
