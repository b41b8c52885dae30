package cas

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/fsx"
	"github.com/mephstore/mephstore/internal/progress"
)

// Expect is what the caller knows of the bytes before they are read.
// A zero Digest and a negative Size mean "unknown".
type Expect struct {
	Size   int64
	Digest digest.Digest
	MD5    string // lowercase hex; checked when set
}

// Unknown expects nothing.
var Unknown = Expect{Size: -1}

const (
	chunkSize = 1 << 20 // read/hash/write unit
	chunks    = 4       // buffers in flight: memory is chunks*chunkSize
	// Every writebackEvery bytes the written range is handed to the kernel
	// for write-back, and every flushEvery bytes a background fdatasync
	// runs, so the final fsync has little left to do.
	writebackEvery = 16 << 20
	flushEvery     = 128 << 20
)

// Staged is a blob written to pool/.ingest, hashed, checked and fsynced,
// waiting for Session.Commit. Discard it if it is not committed.
type Staged struct {
	Digest digest.Digest
	Size   int64
	f      *os.File // kept open: a named temp file's flock marks it as live
	path   string   // the temp file's name; "" for an unnamed (O_TMPFILE) file
	synced bool     // fsynced; Commit syncs the file system for the others
	moved  bool     // placed in the pool (linked or renamed): nothing left to remove
	pooled bool     // hashed in place: the pool has these bytes, no temp file
	// upload, for a small blob of a store with a remote, is its upload
	// running in the background; Commit waits for it.
	upload chan error
	fresh  bool // written to a remote's pool by this process just now
}

// Stage reads r once, writing it to a temp file in the pool while hashing
// it. Reading, hashing and writing overlap. On a size or digest mismatch
// with exp, or any error, nothing is left behind. meter (may be nil) is
// advanced by the bytes read.
func (s *Store) Stage(ctx context.Context, r io.Reader, exp Expect, meter progress.Meter) (*Staged, error) {
	return s.stage(ctx, r, exp, meter, true)
}

// StageUnsynced is Stage without the fsync: for batches of small blobs,
// which Commit makes durable with one file-system sync instead of one fsync
// each.
func (s *Store) StageUnsynced(ctx context.Context, r io.Reader, exp Expect, meter progress.Meter) (*Staged, error) {
	return s.stage(ctx, r, exp, meter, false)
}

func (s *Store) stage(ctx context.Context, r io.Reader, exp Expect, meter progress.Meter, sync bool) (*Staged, error) {
	if s.remote != nil {
		return s.stageRemote(ctx, r, exp, meter, !sync)
	}
	return s.stageLocal(ctx, r, exp, meter, sync)
}

// stageLocal is stage into the local staging area.
func (s *Store) stageLocal(ctx context.Context, r io.Reader, exp Expect, meter progress.Meter, sync bool) (*Staged, error) {
	if meter == nil {
		meter = progress.Factory{}.New("", 0, progress.Bytes)
	}
	if exp.Digest != "" {
		if err := exp.Digest.Validate(); err != nil || exp.Digest.Algorithm() != digest.SHA256 {
			return nil, fmt.Errorf("expected digest %q: %w", exp.Digest, ErrBadDigest)
		}
	}
	path, f, err := s.createStagingFile()
	if err != nil {
		return nil, fmt.Errorf("ingest: create temp file: %w", err)
	}
	st := &Staged{f: f, path: path}
	ok := false
	defer func() {
		if !ok {
			st.Discard()
		}
	}()
	h, md := exp.hashes()
	var n int64
	small := exp.Size
	if lr, ok := r.(interface{ Len() int }); ok && small < 0 {
		small = int64(lr.Len()) // bytes.Reader, strings.Reader, bytes.Buffer
	}
	if small >= 0 && small < chunkSize {
		n, err = copySmall(ctx, f, h, r, small, meter)
	} else if src, ok := r.(*os.File); ok && isRegular(src) {
		n, err = copyFileHashing(ctx, f, h, src, exp.Size, meter)
		if errors.Is(err, errNoCopyFileRange) {
			n, err = s.copyHashing(ctx, f, h, r, exp.Size, meter)
		}
	} else {
		n, err = s.copyHashing(ctx, f, h, r, exp.Size, meter)
	}
	if err != nil {
		return nil, err
	}
	st.Size = n
	st.Digest = digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	if err := exp.check("ingest", n, st.Digest, md); err != nil {
		return nil, err
	}
	if err := f.Chmod(0o444); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("ingest: fsync %s: %w", path, err)
		}
		st.synced = true
	}
	ok = true
	return st, nil
}

// hashes are the hashes the bytes go through for exp: sha256 (h), and
// md5 (md, else nil) when exp names one, fed the same bytes by h.
func (exp Expect) hashes() (h, md hash.Hash) {
	h = sha256.New()
	if exp.MD5 != "" {
		md = md5.New()
		h = &alsoHash{Hash: h, other: md}
	}
	return h, md
}

// check compares what was read (n bytes, digest d, the md5 hash md when
// hashes made one) with exp; what names the operation in the error.
func (exp Expect) check(what string, n int64, d digest.Digest, md hash.Hash) error {
	switch {
	case exp.Size >= 0 && n != exp.Size:
		return fmt.Errorf("%s: got %d bytes, expected %d: %w", what, n, exp.Size, ErrSizeMismatch)
	case exp.Digest != "" && d != exp.Digest:
		return fmt.Errorf("%s: content is %s, expected %s: %w", what, d, exp.Digest, ErrDigestMismatch)
	case md != nil && hex.EncodeToString(md.Sum(nil)) != exp.MD5:
		return fmt.Errorf("%s: md5 is %x, expected %s: %w", what, md.Sum(nil), exp.MD5, ErrDigestMismatch)
	}
	return nil
}

// Check checks a blob's size and sha256 against exp (not its MD5: a
// blob store that hashes only sha256 as it writes calls it; when exp has a
// digest, a matching sha256 settles the bytes).
func (exp Expect) Check(what string, n int64, d digest.Digest) error {
	return exp.check(what, n, d, nil)
}

// alsoHash is a sha256 that feeds a second hash the same bytes.
type alsoHash struct {
	hash.Hash
	other hash.Hash
}

func (a *alsoHash) Write(p []byte) (int, error) {
	a.other.Write(p)
	return a.Hash.Write(p)
}

// BlobMD5 hashes a pooled blob with md5 (which the pool does not record),
// for checking what metadata says of bytes the pool already holds.
func (s *Store) BlobMD5(ctx context.Context, d digest.Digest) (string, error) {
	f, err := s.openBlobFile(ctx, d)
	if err != nil {
		return "", fmt.Errorf("blob %s: %w", d, err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", fmt.Errorf("blob %s: %w", d, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// copySmall handles inputs known to be smaller than one chunk: one read
// into a buffer of their size (and one byte more, to catch a longer input),
// one hash, one write.
func copySmall(ctx context.Context, f *os.File, h hash.Hash, r io.Reader, size int64, meter progress.Meter) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("ingest: %w", err)
	}
	buf := make([]byte, size+1)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		return int64(n), fmt.Errorf("ingest: more than the %d bytes expected: %w", size, ErrSizeMismatch)
	case err != io.ErrUnexpectedEOF && err != io.EOF:
		return int64(n), fmt.Errorf("ingest: read: %w", err)
	}
	h.Write(buf[:n])
	if _, err := f.Write(buf[:n]); err != nil {
		return int64(n), fmt.Errorf("ingest: write temp file: %w", err)
	}
	meter.Add(int64(n))
	return int64(n), nil
}

type chunk struct {
	buf []byte
	n   int
	err error
}

// copyHashing copies r to f and h. A reader goroutine fills buffers; for
// each buffer, the hash runs on a second goroutine while this one writes.
func (s *Store) copyHashing(ctx context.Context, f *os.File, h hash.Hash, r io.Reader, limit int64, meter progress.Meter) (int64, error) {
	free := make(chan []byte, chunks)
	for range chunks {
		free <- s.getBuf()
	}
	full := make(chan chunk, chunks)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	defer func() {
		close(stop)
		// The reader may still be inside r.Read with a buffer: hand the
		// buffers back to the pool only once it has gone.
		go func() {
			<-readerDone
			for {
				select {
				case b := <-free:
					s.bufs.Put(&b)
				default:
					return
				}
			}
		}()
	}()
	go func() {
		defer close(readerDone)
		defer close(full)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(r, buf)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			select {
			case full <- chunk{buf, n, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	hashIn := make(chan []byte)
	hashDone := make(chan struct{})
	defer close(hashIn)
	go func() {
		for b := range hashIn {
			h.Write(b)
			hashDone <- struct{}{}
		}
	}()
	var total int64
	wb := startWriteback(f)
	defer wb.stop()
	for c := range full {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("ingest: %w", err)
		}
		if c.n > 0 {
			if limit >= 0 && total+int64(c.n) > limit {
				return total, fmt.Errorf("ingest: more than the %d bytes expected: %w", limit, ErrSizeMismatch)
			}
			data := c.buf[:c.n]
			hashIn <- data
			_, werr := f.Write(data)
			<-hashDone
			if werr != nil {
				return total, fmt.Errorf("ingest: write temp file: %w", werr)
			}
			total += int64(c.n)
			meter.Add(int64(c.n))
			wb.written(total)
		}
		if c.err == io.EOF {
			return total, nil
		}
		if c.err != nil {
			return total, fmt.Errorf("ingest: read: %w", c.err)
		}
		free <- c.buf
	}
	return total, nil
}

// getBuf takes a chunk buffer from the store's pool.
func (s *Store) getBuf() []byte {
	if b, ok := s.bufs.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, chunkSize)
}

// writeback hands written data to the disk while the ingest goes on: every
// writebackEvery bytes it starts write-back of the new range, and every
// flushEvery bytes a background fdatasync runs. On a virtual disk most of an
// fsync's cost is the device cache flush, which grows with what was written
// since the last one; flushing along the way leaves the final fsync only the
// tail.
type writeback struct {
	fd              int
	kicked, flushed int64
	req             chan struct{}
	done            chan struct{}
}

func startWriteback(f *os.File) *writeback {
	w := &writeback{fd: int(f.Fd()), req: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for range w.req {
			unix.Fdatasync(w.fd)
		}
	}()
	return w
}

// written reports that the file now holds total bytes.
func (w *writeback) written(total int64) {
	if total-w.kicked >= writebackEvery {
		unix.SyncFileRange(w.fd, w.kicked, total-w.kicked, unix.SYNC_FILE_RANGE_WRITE)
		w.kicked = total
	}
	if total-w.flushed >= flushEvery {
		select {
		case w.req <- struct{}{}:
			w.flushed = total
		default: // a flush is still running
		}
	}
}

// stop waits for a running flush to end.
func (w *writeback) stop() {
	close(w.req)
	<-w.done
}

var errNoCopyFileRange = errors.New("copy_file_range not supported here")

func isRegular(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular()
}

// copyRangeSize is how much one copy_file_range call copies.
const copyRangeSize = 8 << 20

// copyFileHashing copies the regular file src to f in the kernel
// (copy_file_range, as cp does) on one goroutine, while this one reads back
// what has landed in f and hashes it: the digest is of the temp file's own
// bytes, and the copy itself costs no trip through user space. It returns
// errNoCopyFileRange, having written nothing, when the kernel cannot copy
// between these files.
func copyFileHashing(ctx context.Context, f *os.File, h hash.Hash, src *os.File, limit int64, meter progress.Meter) (int64, error) {
	start, err := src.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, errNoCopyFileRange
	}
	progressCh := make(chan int64, 64)
	errc := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		defer close(progressCh)
		roff, woff := start, int64(0)
		for {
			select {
			case <-stop:
				errc <- nil
				return
			default:
			}
			n, err := unix.CopyFileRange(int(src.Fd()), &roff, int(f.Fd()), &woff, copyRangeSize, 0)
			if err != nil {
				if woff == 0 && (errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
					errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)) {
					errc <- errNoCopyFileRange
				} else {
					errc <- fmt.Errorf("ingest: copy: %w", err)
				}
				return
			}
			if n == 0 {
				errc <- nil
				return
			}
			progressCh <- woff
			if limit >= 0 && woff > limit {
				errc <- nil // the reader below reports the overrun
				return
			}
		}
	}()
	defer func() {
		close(stop)
		for range progressCh {
		}
	}()
	wb := startWriteback(f)
	defer wb.stop()
	// Read back through one small buffer (hashing straight from a mapping of
	// the page cache measured slower: 4 KiB pages).
	buf := make([]byte, chunkSize)
	var hashed int64
	for avail := range progressCh {
		if err := ctx.Err(); err != nil {
			return hashed, fmt.Errorf("ingest: %w", err)
		}
		if limit >= 0 && avail > limit {
			return hashed, fmt.Errorf("ingest: more than the %d bytes expected: %w", limit, ErrSizeMismatch)
		}
		wb.written(avail)
		for hashed < avail {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), avail-hashed)], hashed)
			if err != nil && !(err == io.EOF && n > 0) {
				return hashed, fmt.Errorf("ingest: read back temp file: %w", err)
			}
			h.Write(buf[:n])
			hashed += int64(n)
			meter.Add(int64(n))
		}
	}
	if err := <-errc; err != nil {
		if errors.Is(err, errNoCopyFileRange) && hashed == 0 {
			return 0, err
		}
		return hashed, err
	}
	// Leave the source's offset after what was read, as a read would.
	src.Seek(start+hashed, io.SeekStart)
	return hashed, nil
}

// Discard removes the temp file of a blob that will not be committed.
func (st *Staged) Discard() error {
	if st.upload != nil {
		<-st.upload // never leave an upload running behind the caller
		st.upload = nil
	}
	if st.f == nil {
		return nil
	}
	if !st.moved && st.path != "" {
		os.Remove(st.path)
	}
	err := st.f.Close()
	st.f = nil
	return err
}

// place gives the staged bytes the pool name dst unless dst exists: the
// unnamed file is linked there, a named temp file renamed.
func (st *Staged) place(dst string) (bool, error) {
	if st.path == "" {
		return linkNoReplace(st.f, dst)
	}
	return renameNoReplace(st.path, dst)
}

// Committed is the outcome of a commit.
type Committed struct {
	Blob
	New bool `json:"new"` // false when the store already had these bytes
}

// Commit moves staged blobs into the pool and records them, in order. A blob
// already in the pool is left as it is and its temp file removed. Every
// staged blob is consumed (committed or discarded) whatever happens. When
// ctx carries a lease (WithLease), the blobs are added to it in the same
// transaction as their records, and a lapsed lease fails the commit before
// anything moves.
func (ss *Session) Commit(ctx context.Context, staged ...*Staged) ([]Committed, error) {
	return ss.commit(LeaseFrom(ctx), staged)
}

func (ss *Session) commit(lease *Lease, staged []*Staged) ([]Committed, error) {
	defer func() {
		for _, st := range staged {
			st.Discard()
		}
	}()
	if !ss.writable {
		return nil, ErrReadOnly
	}
	if lease != nil {
		if err := ss.View(func(txn Txn) error { return ss.liveLease(txn, lease) }); err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
	}
	// 0. Make unsynced temp files durable: one fsync each when there are
	// few, one sync of the whole file system when there are many.
	var unsynced []*Staged
	for _, st := range staged {
		if !st.synced {
			unsynced = append(unsynced, st)
		}
	}
	if ss.s.remote != nil {
		// On a remote store the bytes go to its pool first (stages
		// upload as they finish: this is for what they left); records
		// follow in one log entry, so no intent is needed.
		if err := ss.s.uploadAll(ss.ctx, staged); err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
		out, err := ss.place(staged)
		if err != nil {
			return nil, err
		}
		if err := ss.record(out, lease, nil); err != nil {
			return nil, fmt.Errorf("commit: record blobs: %w", err)
		}
		return out, nil
	}
	if err := ss.syncFiles(unsynced); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	// 1. One intent for the batch, so recovery can finish or undo a commit
	// cut short. (One record per batch, not per blob: deleted records stay
	// in badger as tombstones until compaction, and recovery scans them.)
	ikey := intentKey()
	if err := ss.update(func(txn Txn) error {
		return txn.Set(ikey, encodeIntent(staged))
	}); err != nil {
		return nil, fmt.Errorf("commit: record intent: %w", err)
	}
	// 2. Files into place, never replacing one.
	out, err := ss.place(staged)
	if err != nil {
		return nil, err
	}
	// 3. Records, dropping the intent.
	if err := ss.record(out, lease, ikey); err != nil {
		return nil, fmt.Errorf("commit: record blobs: %w", err)
	}
	return out, nil
}

// place renames the staged files into the pool, never replacing one, and
// syncs their directories.
func (ss *Session) place(staged []*Staged) ([]Committed, error) {
	out := make([]Committed, len(staged))
	dirs := map[string]bool{}
	for i, st := range staged {
		dst := ss.s.BlobPath(st.Digest)
		if st.pooled {
			// (Bytes this process has just written to a remote's pool
			// need no check: nothing removes an object no record names
			// for an hour.)
			if !st.fresh && ss.s.poolFileSize(ss.context(), st.Digest) != st.Size {
				return nil, fmt.Errorf("commit %s: %w: removed from the pool since it was found there (by gc?); ingest it again", st.Digest, ErrBlobNotFound)
			}
			out[i] = Committed{Blob: Blob{Digest: st.Digest, Size: st.Size, Ingested: ss.s.now().UTC()}}
			continue
		}
		dir := filepath.Dir(dst)
		if !dirs[dir] {
			if err := fsx.MkdirDurable(dir, 0o755); err != nil {
				return nil, fmt.Errorf("commit %s: %w", st.Digest, err)
			}
			dirs[dir] = true
		}
		created, err := st.place(dst)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", st.Digest, err)
		}
		st.moved = created
		if !created {
			fi, err := os.Stat(dst)
			if err != nil {
				return nil, fmt.Errorf("commit %s: %w", st.Digest, err)
			}
			if fi.Size() != st.Size {
				return nil, fmt.Errorf("commit %s: pool file %s has %d bytes, not %d (run 'mephstore fsck'): %w",
					st.Digest, dst, fi.Size(), st.Size, ErrCorrupt)
			}
		}
		out[i] = Committed{Blob: Blob{Digest: st.Digest, Size: st.Size, Ingested: ss.s.now().UTC()}, New: created}
	}
	if len(dirs) > syncfsAbove {
		if err := ss.syncfs(); err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
	} else {
		for d := range dirs {
			if err := fsx.SyncDir(d); err != nil {
				return nil, fmt.Errorf("commit: %w", err)
			}
		}
	}
	return out, nil
}

// record writes the blob records of a placed batch (an existing record is
// kept as it is: it holds the first-ingested time), adds them to the
// lease, and drops the batch's intent: in one transaction when the batch
// is at most maxTxnEntries blobs; a larger one records in transactions of
// that many first, and a crash between two leaves the intent, from which
// recovery records the rest.
func (ss *Session) record(out []Committed, lease *Lease, ikey []byte) error {
	last := out
	if len(out) > maxTxnEntries {
		for lo := 0; lo < len(out); lo += maxTxnEntries {
			chunk := out[lo:min(lo+maxTxnEntries, len(out))]
			if err := ss.update(func(txn Txn) error { return putRecords(txn, chunk) }); err != nil {
				return err
			}
		}
		last = nil
	}
	return ss.update(func(txn Txn) error {
		if err := putRecords(txn, last); err != nil {
			return err
		}
		if lease != nil {
			refs := make([]Ref, len(out))
			for i := range out {
				refs[i] = Ref{Kind: RefBlob, Digest: out[i].Digest}
			}
			k, err := leaseRefsKey(lease.ID)
			if err != nil {
				return err
			}
			if err := txn.Set(k, EncodeRefs(refs)); err != nil {
				return err
			}
		}
		if ikey == nil {
			return nil
		}
		return txn.Delete(ikey)
	})
}

// putRecords records each committed blob that has no record yet and says
// in out which were new.
func putRecords(txn Txn, out []Committed) error {
	for i := range out {
		b, err := GetBlob(txn, out[i].Digest)
		switch {
		case err == nil:
			out[i].Blob, out[i].New = b, false
		case errors.Is(err, ErrBlobNotFound):
			if err := txn.Set(blobKey(PrefixBlob, out[i].Digest), encodeRecord(out[i].Blob)); err != nil {
				return err
			}
			out[i].New = true
		default:
			return err
		}
	}
	return nil
}

// syncfsAbove: batches with more files (or directories) than this are made
// durable with one syncfs(2) of the pool's file system instead of one fsync
// each (an fsync costs a few milliseconds on a virtual disk, mostly the
// device flush that syncfs pays once).
const syncfsAbove = 4

func (ss *Session) syncFiles(sts []*Staged) error {
	if len(sts) > syncfsAbove {
		if err := ss.syncfs(); err != nil {
			return err
		}
	} else {
		for _, st := range sts {
			if err := st.f.Sync(); err != nil {
				return fmt.Errorf("fsync %s: %w", st.f.Name(), err)
			}
		}
	}
	for _, st := range sts {
		st.synced = true
	}
	return nil
}

func (ss *Session) syncfs() error { return fsx.Syncfs(ss.s.poolPath()) }

// PutBytes stores small blobs held in memory (snapshot documents, product
// metadata) in this writer session: blobs the store has are skipped without
// a write, the others are written unsynced and committed as one batch. When
// ctx carries a lease, every blob (new or not) is added to it.
func (ss *Session) PutBytes(ctx context.Context, blobs ...[]byte) ([]digest.Digest, error) {
	if !ss.writable {
		return nil, ErrReadOnly
	}
	out := make([]digest.Digest, len(blobs))
	var staged []*Staged
	seen := map[digest.Digest]bool{}
	for i, b := range blobs {
		d := digest.FromBytes(b)
		out[i] = d
		if seen[d] {
			continue
		}
		seen[d] = true
		if ss.s.remote != nil || fileExists(ss.s.BlobPath(d)) {
			var has bool
			if err := ss.View(func(txn Txn) error {
				_, err := GetBlob(txn, d)
				has = err == nil
				return nil
			}); err != nil {
				return nil, err
			}
			if has {
				continue
			}
		}
		st, err := ss.s.StageUnsynced(ctx, bytes.NewReader(b), Expect{Size: int64(len(b)), Digest: d}, nil)
		if err != nil {
			for _, st := range staged {
				st.Discard()
			}
			return nil, err
		}
		staged = append(staged, st)
	}
	if len(staged) > 0 {
		if _, err := ss.commit(nil, staged); err != nil {
			return nil, err
		}
	}
	if l := LeaseFrom(ctx); l != nil {
		refs := make([]Ref, 0, len(seen))
		for d := range seen {
			refs = append(refs, Ref{Kind: RefBlob, Digest: d})
		}
		if err := ss.update(func(txn Txn) error { return ss.addRefs(txn, l, refs) }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ReadBlob reads a whole blob into memory, checking its sha256. For small
// blobs (metadata); stream large ones with OpenBlob.
// On a store with a remote, small blobs read once are kept in the local
// cache (they never change), so metadata is read over the network once.
func (s *Store) ReadBlob(d digest.Digest) ([]byte, error) {
	if s.remote != nil {
		return s.readCached(d)
	}
	return s.readLocal(d)
}

// readLocal reads a blob of the local pool whole, with open, fstat, read
// and close (see fsx.ReadFile), and checks it.
func (s *Store) readLocal(d digest.Digest) ([]byte, error) {
	b, err := fsx.ReadFile(s.BlobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", d, ErrBlobNotFound)
	}
	if err != nil {
		return nil, err
	}
	if got := digest.FromBytes(b); got != d {
		return nil, fmt.Errorf("blob %s: content hashes to %s: %w", d, got, ErrCorrupt)
	}
	return b, nil
}

// readBlob reads a blob whole through openBlobFile (the remote's pool of
// a store that has one) and checks it.
func (s *Store) readBlob(d digest.Digest) ([]byte, error) {
	r, err := s.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// One allocation of the known size plus one byte, so that the read
	// that meets the end (and checks the sha256) needs no second buffer.
	b := make([]byte, r.Size+1)
	n, err := io.ReadFull(r, b)
	switch {
	case err == io.ErrUnexpectedEOF && int64(n) == r.Size:
		return b[:n], nil
	case err == nil, err == io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("blob %s: %d bytes, recorded %d: %w", d, n, r.Size, ErrCorrupt)
	default:
		return nil, err
	}
}

// renameNoReplace renames src to dst unless dst exists; it reports whether
// it did.
func renameNoReplace(src, dst string) (bool, error) {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return false, nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		// No RENAME_NOREPLACE on this file system: link(2) fails on an
		// existing name just the same.
		if err := os.Link(src, dst); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return false, nil
			}
			return false, err
		}
		os.Remove(src)
		return true, nil
	default:
		return false, err
	}
}
