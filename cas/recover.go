package cas

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/flock"
)

// Recovery says what a writer session's recovery did.
type Recovery struct {
	TempFiles int // stale temp files removed from pool/.ingest
	Intents   int // leftover commit intents resolved
	Adopted   int // of those, pool files that were complete and got their record
	Deleted   int // pool files of an interrupted delete (gc) removed
}

// recover removes the temp files of dead ingests and resolves leftover
// commit intents. It runs at the start of every writer session.
func (ss *Session) recover(ctx context.Context) (Recovery, error) {
	var rec Recovery
	ents, err := os.ReadDir(ss.s.ingestPath())
	if err != nil {
		return rec, err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ss.s.tempPrefix) {
			continue // this process's own
		}
		p := filepath.Join(ss.s.ingestPath(), e.Name())
		stale, err := isStale(p)
		if err != nil {
			return rec, err
		}
		if stale {
			if err := os.RemoveAll(p); err != nil {
				return rec, err
			}
			rec.TempFiles++
		}
	}
	intents, err := ss.readIntents(PrefixIntent)
	if err != nil {
		return rec, err
	}
	for _, in := range intents {
		for _, d := range in.ds {
			if err := ctx.Err(); err != nil {
				return rec, err
			}
			adopted, err := ss.resolveIntent(d)
			if err != nil {
				return rec, err
			}
			rec.Intents++
			if adopted {
				rec.Adopted++
			}
		}
		if err := ss.update(func(txn Txn) error { return txn.Delete(in.key) }); err != nil {
			return rec, err
		}
	}
	rec.Deleted, err = ss.recoverDeletes(ctx)
	return rec, err
}

// isStale reports whether a temp file in pool/.ingest belongs to no live
// process: its writer's flock is gone.
func isStale(p string) (bool, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // finished meanwhile
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	got, err := flock.TryExclusive(f)
	if err != nil {
		return false, fmt.Errorf("check temp file %s: %w", p, err)
	}
	return got, nil
}

// intentKey is a new, unique key for a batch's commit intent.
func intentKey() []byte {
	var b [12]byte
	rand.Read(b[:])
	return append([]byte{PrefixIntent}, b[:]...)
}

// encodeIntent lists the digests of a batch: 32 raw bytes each.
func encodeIntent(staged []*Staged) []byte {
	ds := make([]digest.Digest, len(staged))
	for i, st := range staged {
		ds[i] = st.Digest
	}
	return encodeDigests(ds)
}

func encodeDigests(ds []digest.Digest) []byte {
	out := make([]byte, 0, 32*len(ds))
	for _, d := range ds {
		raw, _ := hex.DecodeString(d.Encoded())
		out = append(out, raw...)
	}
	return out
}

func decodeIntent(v []byte) ([]digest.Digest, error) {
	if len(v)%32 != 0 {
		return nil, fmt.Errorf("commit intent of %d bytes: not a list of sha256", len(v))
	}
	out := make([]digest.Digest, 0, len(v)/32)
	for i := 0; i < len(v); i += 32 {
		out = append(out, digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(v[i:i+32])))
	}
	return out, nil
}

// resolveIntent finishes the commit of d that a crash cut short, or drops
// it (the caller deletes the intent).
// The pool file is adopted only if it hashes to its name.
func (ss *Session) resolveIntent(d digest.Digest) (adopted bool, err error) {
	p := ss.s.BlobPath(d)
	var size int64
	var herr error
	if ss.s.remote != nil {
		// A remote pool checks bytes before they are visible.
		if size = ss.s.poolFileSize(ss.context(), d); size < 0 {
			herr = fs.ErrNotExist
		}
	} else {
		size, herr = hashFile(p, d)
	}
	err = ss.update(func(txn Txn) error {
		if _, err := GetBlob(txn, d); err == nil {
			return nil
		}
		if herr == nil {
			rec := Blob{Digest: d, Size: size, Ingested: ss.s.now().UTC()}
			if err := txn.Set(blobKey(PrefixBlob, d), encodeRecord(rec)); err != nil {
				return err
			}
			adopted = true
		} else if !errors.Is(herr, fs.ErrNotExist) {
			// Leave the file for fsck to report; never delete bytes here.
			ss.s.log.Warn("interrupted commit left a pool file that does not match its name", "blob", d, "err", herr)
		}
		return nil
	})
	return adopted, err
}

// hashFile checks that the file at p hashes to d and returns its size.
func hashFile(p string, d digest.Digest) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return n, fmt.Errorf("read %s: %w", p, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Encoded() {
		return n, fmt.Errorf("content hashes to sha256:%s: %w", got, ErrCorrupt)
	}
	return n, nil
}

// intent is a leftover commit or delete intent.
type intent struct {
	key []byte
	ds  []digest.Digest
}

// readIntents lists the intents under prefix (PrefixIntent or PrefixDelete).
func (ss *Session) readIntents(prefix byte) ([]intent, error) {
	var out []intent
	err := ss.View(func(txn Txn) error {
		return txn.Scan([]byte{prefix}, nil, func(k, v []byte) error {
			ds, err := decodeIntent(v)
			if err != nil {
				return err
			}
			out = append(out, intent{bytes.Clone(k), ds})
			return nil
		})
	})
	return out, err
}
