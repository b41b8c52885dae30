package s3store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/mephstore/mephstore/internal/fsx"
)

// LockTTL is how long a lock lives without renewal: a holder that dies
// blocks others this long at most. Holders renew at a third of it.
const LockTTL = 60 * time.Second

// maxLockConflicts is how many conflicts (ErrConflict) one Lock takes as
// passing before it gives up with the server's answer.
const maxLockConflicts = 5

// ErrLocked is wrapped when a lock is not had before the context ends.
var ErrLocked = errors.New("locked by another process")

// lockRecord is a lock object's body.
type lockRecord struct {
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Expires time.Time `json:"expires"` // by the server's clock
}

// Lock takes the lock name under dir (an exclusive one: dir/name/x; a
// shared one: dir/name/s-<id>, and no live exclusive one). Exclusive and
// shared holders each write their object first and then look for the
// other kind, so two never both hold it; whoever sees the other backs
// off and waits. Locks expire after LockTTL unless renewed, which the
// holder does until it calls the returned function.
func (b *Bucket) Lock(ctx context.Context, dir, name string, exclusive bool) (func(), error) {
	base := strings.TrimSuffix(dir, "/") + "/" + name + "/"
	own := base + "x"
	if !exclusive {
		own = base + "s-" + fsx.TempName("", "")
	}
	conflicts := 0
	for wait := 20 * time.Millisecond; ; wait = min(wait*2, time.Second) {
		etag, err := b.claim(ctx, own, exclusive)
		if err == nil {
			var busy bool
			busy, err = b.othersLive(ctx, base, exclusive)
			if err == nil && !busy {
				return b.keep(own, etag), nil
			}
			b.Delete(context.WithoutCancel(ctx), own)
		}
		if errors.Is(err, ErrConflict) {
			// A put that raced another holder's delete: try again, a
			// few times (a lasting conflict is the server's answer).
			if conflicts++; conflicts > maxLockConflicts {
				return nil, err
			}
		} else if err != nil && !errors.Is(err, ErrPrecondition) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s%s: %w", b.prefix, base, ErrLocked)
		case <-time.After(wait):
		}
	}
}

func (b *Bucket) record() []byte {
	host, _ := os.Hostname()
	r, _ := json.Marshal(lockRecord{Host: host, PID: os.Getpid(), Expires: b.Now().Add(LockTTL)})
	return r
}

// claim writes the lock object: a new one, or over an expired one.
func (b *Bucket) claim(ctx context.Context, key string, exclusive bool) (string, error) {
	etag, err := b.Put(ctx, key, b.record(), Cond{IfNoneMatch: true})
	if !exclusive || !errors.Is(err, ErrPrecondition) {
		return etag, err
	}
	old, oldTag, gerr := b.Get(ctx, key, 4096)
	if gerr != nil {
		return "", err
	}
	if b.live(old) {
		return "", err
	}
	return b.Put(ctx, key, b.record(), Cond{IfMatch: oldTag}) // take over a dead holder's
}

// live says whether a lock record's holder may still hold it: it has not
// expired, and, when the holder ran on this machine, its process exists
// (a holder killed here frees its lock at once, not after LockTTL).
func (b *Bucket) live(body []byte) bool {
	var r lockRecord
	if json.Unmarshal(body, &r) != nil || !b.Now().Before(r.Expires) {
		return false
	}
	host, _ := os.Hostname()
	if r.Host == host && r.PID > 0 && r.PID != os.Getpid() {
		return syscall.Kill(r.PID, 0) != syscall.ESRCH
	}
	return true
}

// othersLive says whether a live lock of the other kind is held under base.
func (b *Bucket) othersLive(ctx context.Context, base string, exclusive bool) (bool, error) {
	if !exclusive {
		body, _, err := b.Get(ctx, base+"x", 4096)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return err == nil && b.live(body), err
	}
	busy := false
	err := b.List(ctx, base+"s-", "", func(o Info) error {
		body, _, err := b.Get(ctx, o.Key, 4096)
		if err == nil && b.live(body) {
			busy = true
		}
		return nil
	})
	return busy, err
}

// keep renews the lock until the returned function is called, which
// removes it.
func (b *Bucket) keep(key, etag string) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), LockTTL/3)
				if e, err := b.Put(ctx, key, b.record(), Cond{IfMatch: etag}); err == nil {
					etag = e
				}
				cancel()
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), LockTTL/3)
		defer cancel()
		b.Delete(ctx, key)
	}
}
