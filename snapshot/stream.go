package snapshot

import (
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
)

// Errors of stream operations.
var (
	ErrNoStream      = errors.New("no such stream")
	ErrStreamExists  = errors.New("stream exists")
	ErrBadName       = errors.New("bad stream name")
	ErrHeadMoved     = errors.New("stream changed while this operation ran")
	ErrNothingToDo   = errors.New("nothing to do")
	ErrNoHistory     = errors.New("not in the stream's history")
	ErrNoSuchVersion = errors.New("no such version")
)

// Stream is a stream's record.
type Stream struct {
	Name    string        `json:"name"`
	Label   string        `json:"label"`
	Created time.Time     `json:"created"`
	Head    digest.Digest `json:"head"`
	Seq     uint64        `json:"seq"` // sequence number of the newest history entry
	Updated time.Time     `json:"updated"`
}

// ContentID is the stream's content id: com.ubuntu.maas:<label>:v3:download.
func (s *Stream) ContentID() string { return "com.ubuntu.maas:" + s.Label + ":v3:download" }

// ProductPrefix is what the stream's product names start with.
func (s *Stream) ProductPrefix() string { return "com.ubuntu.maas." + s.Label + ":v3:boot:" }

// Entry is one entry of a stream's history.
type Entry struct {
	Seq       uint64        `json:"seq"`
	Snapshot  digest.Digest `json:"snapshot"`
	Time      time.Time     `json:"time"`
	Operation string        `json:"operation"`
	Summary   string        `json:"summary"`
}

var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`) })

// ValidName checks a stream name or label: lowercase letters, digits, '.',
// '_' and '-', starting with a letter or digit, at most 64 characters (it
// becomes a directory name and part of product names).
func ValidName(kind, s string) error {
	if !nameRE().MatchString(s) {
		return fmt.Errorf("%s %q: %w: use lowercase letters, digits, '.', '_' and '-'", kind, s, ErrBadName)
	}
	return nil
}

// reservedStreams are names a stream cannot take: they collide with the
// publish root's own directories (root/data is the shared data pool) or
// with the layout clients look for (streams/v1 at a tree's root).
var reservedStreams = map[string]bool{"data": true, "streams": true}

// ValidStreamName checks a new stream's name: ValidName, and none of the
// names the publish root uses for itself.
func ValidStreamName(s string) error {
	if err := ValidName("stream name", s); err != nil {
		return err
	}
	if reservedStreams[s] {
		return fmt.Errorf("stream name %q: %w: the publish root uses it for itself", s, ErrBadName)
	}
	return nil
}

// streamHeads is the table of stream records (name, label, head).
func streamHeads() cas.Table[string, Stream] {
	return cas.NewTable(cas.KindStream, nil, cas.StringKey(), cas.JSONValue[Stream]())
}

// historyOf is the table of a stream's history entries, by sequence
// number. (Stream names hold no NUL: the sub-space of one never holds
// another's.)
func historyOf(name string) cas.Table[uint64, Entry] {
	return cas.NewTable(cas.KindHistory, append([]byte(name), 0), cas.Uint64Key(), cas.JSONValue[Entry]())
}

// GetStream reads a stream record.
func GetStream(txn cas.Txn, name string) (*Stream, error) {
	st, err := streamHeads().Get(txn, name)
	if errors.Is(err, cas.ErrNoRecord) {
		return nil, fmt.Errorf("stream %q: %w", name, ErrNoStream)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %q: record: %w", name, err)
	}
	return &st, nil
}

// Streams lists every stream in name order.
func Streams(txn cas.Txn) ([]*Stream, error) {
	var out []*Stream
	err := streamHeads().Scan(txn, func(name string, st Stream) error {
		out = append(out, &st)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stream records: %w", err)
	}
	return out, nil
}

// History calls fn for the stream's history entries, newest first, until
// fn returns false.
func History(txn cas.Txn, name string, fn func(Entry) bool) error {
	err := historyOf(name).ScanReverse(txn, func(_ uint64, e Entry) error {
		if !fn(e) {
			return cas.ErrStopScan
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stream %q: history: %w", name, err)
	}
	return nil
}

// appendEntry moves the stream's head by appending a history entry.
func appendEntry(txn cas.Txn, st *Stream, e Entry) error {
	st.Seq++
	e.Seq = st.Seq
	st.Head = e.Snapshot
	st.Updated = e.Time
	if err := historyOf(st.Name).Put(txn, e.Seq, e); err != nil {
		return err
	}
	return streamHeads().Put(txn, st.Name, *st)
}
