package snapshot

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/mephstore/mephstore/cas"
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

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidName checks a stream name or label: lowercase letters, digits, '.',
// '_' and '-', starting with a letter or digit, at most 64 characters (it
// becomes a directory name and part of product names).
func ValidName(kind, s string) error {
	if !nameRE.MatchString(s) {
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

func streamKey(name string) []byte { return append([]byte{cas.PrefixStream}, name...) }

func historyKey(name string, seq uint64) []byte {
	k := append([]byte{cas.PrefixHistory}, name...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func historyPrefix(name string) []byte {
	return append(append([]byte{cas.PrefixHistory}, name...), 0)
}

// GetStream reads a stream record.
func GetStream(txn cas.Txn, name string) (*Stream, error) {
	v, err := txn.Get(streamKey(name))
	if errors.Is(err, cas.ErrNoRecord) {
		return nil, fmt.Errorf("stream %q: %w", name, ErrNoStream)
	}
	if err != nil {
		return nil, err
	}
	var st Stream
	if err := json.Unmarshal(v, &st); err != nil {
		return nil, fmt.Errorf("stream %q: record: %w", name, err)
	}
	return &st, nil
}

// Streams lists every stream in name order.
func Streams(txn cas.Txn) ([]*Stream, error) {
	var out []*Stream
	err := txn.Scan([]byte{cas.PrefixStream}, nil, func(k, v []byte) error {
		var st Stream
		if err := json.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("stream record %q: %w", k[1:], err)
		}
		out = append(out, &st)
		return nil
	})
	return out, err
}

// History calls fn for the stream's history entries, newest first, until
// fn returns false.
func History(txn cas.Txn, name string, fn func(Entry) bool) error {
	return txn.ScanReverse(historyPrefix(name), func(k, v []byte) error {
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("stream %q: history: %w", name, err)
		}
		if !fn(e) {
			return cas.ErrStopScan
		}
		return nil
	})
}

// appendEntry moves the stream's head by appending a history entry.
func appendEntry(txn cas.Txn, st *Stream, e Entry) error {
	st.Seq++
	e.Seq = st.Seq
	st.Head = e.Snapshot
	st.Updated = e.Time
	eb, err := json.Marshal(e)
	if err != nil {
		return err
	}
	sb, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := txn.Set(historyKey(st.Name, e.Seq), eb); err != nil {
		return err
	}
	return txn.Set(streamKey(st.Name), sb)
}
