package cas

import (
	"context"
	"sync"
)

// sharedReads lets the reader sessions of one short stretch of a command
// share one open of the database (ShareReads). Opening the database costs
// a few milliseconds (its lock, its manifest, a map of every table); a
// publish read a setting, the pending builds, the stream and the published
// mark in four sessions before its first writer session.
type sharedReads struct {
	mu    sync.Mutex
	on    bool
	ss    *Session // the open reader; nil until the first Reader while on
	users int      // borrowed sessions not closed yet
}

// ShareReads makes the reader sessions this Store opens, from now until
// release is called or a writer session opens (whichever comes first),
// borrow one open of the database instead of opening it each. While it is
// open, the database lock is held shared, so other processes' writers
// wait for it as they wait for any reader: call release before work that
// reads no records. A writer session of this Store ends the sharing
// first (a shared lock held by the process itself would keep its own
// writer waiting). release may be called more than once.
func (s *Store) ShareReads() (release func()) {
	s.shared.mu.Lock()
	s.shared.on = true
	s.shared.mu.Unlock()
	return s.endSharedReads
}

// endSharedReads stops the sharing and closes the shared reader once no
// borrowed session uses it.
func (s *Store) endSharedReads() {
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	s.shared.on = false
	s.closeSharedLocked()
}

// closeSharedLocked closes the shared reader if sharing has ended and no
// borrowed session is open. Called with shared.mu held.
func (s *Store) closeSharedLocked() {
	if s.shared.on || s.shared.users > 0 || s.shared.ss == nil {
		return
	}
	if err := s.shared.ss.closeOwn(); err != nil {
		s.log.Warn("closing the shared reader", "err", err)
	}
	s.shared.ss = nil
}

// borrowReader returns a session borrowing the shared reader, opening it
// if it is not open yet, or nil when reads are not shared. The open runs
// without the mutex: it may run a recovery writer session, which ends the
// sharing; the session opened is then the caller's own.
func (s *Store) borrowReader(ctx context.Context) (*Session, error) {
	s.shared.mu.Lock()
	if !s.shared.on {
		s.shared.mu.Unlock()
		return nil, nil
	}
	if s.shared.ss != nil {
		s.shared.users++
		s.shared.mu.Unlock()
		return &Session{s: s, db: s.shared.ss.db, borrowed: true}, nil
	}
	s.shared.mu.Unlock()
	ss, err := s.openReader(ctx)
	if err != nil {
		return nil, err
	}
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	if !s.shared.on || s.shared.ss != nil {
		return ss, nil // sharing ended, or another goroutine shares its own
	}
	s.shared.ss = ss
	s.shared.users++
	return &Session{s: s, db: ss.db, borrowed: true}, nil
}

// returnReader ends a borrowed session.
func (s *Store) returnReader() {
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	s.shared.users--
	s.closeSharedLocked()
}
