package cas

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	badger "github.com/dgraph-io/badger/v4"
)

// Checkpoints is the optional capability of a Remote that keeps
// checkpoints: every record as of one log entry, so that a new cache
// loads the latest and replays only the entries after it, however long
// the log has grown.
type Checkpoints interface {
	// PutCheckpoint stores the records as of log entry seq, read from r.
	PutCheckpoint(ctx context.Context, seq uint64, r io.Reader) error
	// LatestCheckpoint opens the newest checkpoint (seq 0 and a nil
	// reader when there is none).
	LatestCheckpoint(ctx context.Context) (seq uint64, rc io.ReadCloser, err error)
}

// DefaultCheckpointEvery is how many log entries apart checkpoints are.
const DefaultCheckpointEvery = 1000

// Limits of what a checkpoint may hold per record.
const (
	maxCheckpointKey = 64 << 10
	maxCheckpointVal = 64 << 20
)

// checkpoint writes a checkpoint at the session's last log entry when
// the session crossed a multiple of the store's interval. It runs while
// the session still holds the writer lock, so its cache is the log as of
// that entry. Failing is no error of the operation: the next crossing
// writes one.
func (ss *Session) checkpoint() {
	cp, ok := ss.s.remote.(Checkpoints)
	every := uint64(ss.s.checkpointEvery)
	if !ok || ss.broken != nil || every == 0 || ss.seq/every == ss.startSeq/every {
		return
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(dumpRecords(ss.db, pw)) }()
	err := cp.PutCheckpoint(ss.context(), ss.seq, pr)
	pr.CloseWithError(errors.New("checkpoint: upload ended"))
	if err != nil {
		ss.s.log.Warn("could not write a checkpoint of the log; the next writer will", "store", ss.s.remote.String(), "at", ss.seq, "err", err)
		return
	}
	ss.s.log.Debug("wrote a checkpoint of the log", "store", ss.s.remote.String(), "at", ss.seq)
}

// dumpRecords writes every record of the cache but its own as a log
// entry of sets (encodeLog's format), streaming.
func dumpRecords(db *badger.DB, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := bw.WriteByte(logFormat); err != nil {
		return err
	}
	err := db.View(func(t *badger.Txn) error {
		return (&bTxn{t}).Scan(nil, nil, func(k, v []byte) error {
			if k[0] == byte(KindCache) {
				return nil
			}
			bw.WriteByte(1)
			bw.Write(binary.AppendUvarint(nil, uint64(len(k))))
			bw.Write(k)
			bw.Write(binary.AppendUvarint(nil, uint64(len(v))))
			_, err := bw.Write(v)
			return err
		})
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// loadCheckpoint applies a checkpoint as of entry seq to an empty cache.
func loadCheckpoint(db *badger.DB, r io.Reader, seq uint64) error {
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	if err := readCheckpoint(r, seq, wb.Set); err != nil {
		return err
	}
	if err := wb.Set(cacheSeqKey, seqBytes(seq)); err != nil {
		return err
	}
	return wb.Flush()
}

// readCheckpoint parses a checkpoint (read from a bucket: checked, with
// bounds on every length), calling fn with each record.
func readCheckpoint(r io.Reader, seq uint64, fn func(k, v []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	if f, err := br.ReadByte(); err != nil || f != logFormat {
		return fmt.Errorf("checkpoint %d: unknown format", seq)
	}
	field := func(max uint64) ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil || n > max {
			return nil, fmt.Errorf("checkpoint %d: bad record", seq)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("checkpoint %d: truncated: %w", seq, err)
		}
		return b, nil
	}
	for {
		op, err := br.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil || op != 1 {
			return fmt.Errorf("checkpoint %d: bad record", seq)
		}
		k, err := field(maxCheckpointKey)
		if err != nil {
			return err
		}
		v, err := field(maxCheckpointVal)
		if err != nil {
			return err
		}
		if len(k) == 0 || k[0] == byte(KindCache) {
			return fmt.Errorf("checkpoint %d: bad key", seq)
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
}

// loadLatestCheckpoint fills an empty cache from the remote's newest
// checkpoint, and says at which entry it left it (0: none).
func (ss *Session) loadLatestCheckpoint(ctx context.Context) (uint64, error) {
	cp, ok := ss.s.remote.(Checkpoints)
	if !ok {
		return 0, nil
	}
	seq, rc, err := cp.LatestCheckpoint(ctx)
	if err != nil || rc == nil {
		return 0, err
	}
	defer rc.Close()
	// Nothing of an entry applied half-way may survive under it.
	if err := ss.db.DropAll(); err != nil {
		return 0, err
	}
	if err := ss.db.Update(func(t *badger.Txn) error { return t.Set(cacheIDKey, []byte(ss.s.remote.ID())) }); err != nil {
		return 0, err
	}
	if err := loadCheckpoint(ss.db, rc, seq); err != nil {
		return 0, err
	}
	ss.s.log.Debug("loaded a checkpoint of the log", "store", ss.s.remote.String(), "at", seq)
	return seq, nil
}
