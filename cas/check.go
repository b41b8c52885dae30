package cas

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/progress"
)

// Problem kinds found by Check.
const (
	ProblemMissing    = "missing"    // a record without a pool file
	ProblemSize       = "size"       // a pool file whose size differs from its record
	ProblemUnrecorded = "unrecorded" // a pool file without a record
	ProblemStray      = "stray"      // a file or directory that does not belong in the pool
	ProblemMode       = "mode"       // a pool file that is not read-only
	ProblemCorrupt    = "corrupt"    // a pool file whose bytes do not hash to its name (--deep)
	ProblemRead       = "read"       // a pool file that could not be read (--deep)
)

// Problem is one inconsistency found by Check.
type Problem struct {
	Kind   string        `json:"kind"`
	Digest digest.Digest `json:"digest,omitempty"`
	Path   string        `json:"path"`
	Detail string        `json:"detail"`
}

func (p Problem) String() string {
	what := p.Path
	if p.Digest != "" {
		what = string(p.Digest)
	}
	return fmt.Sprintf("%s: %s: %s", p.Kind, what, p.Detail)
}

// CheckOptions tune Check.
type CheckOptions struct {
	Deep   bool // re-hash every blob
	Jobs   int  // parallel hashers for Deep; 0 means GOMAXPROCS
	Meters progress.Factory
}

// CheckReport is the result of Check.
type CheckReport struct {
	Blobs     int64     `json:"blobs"`
	Bytes     int64     `json:"bytes"`
	Hashed    int64     `json:"hashed"`
	LiveTemps int       `json:"live_temp_files"` // ingests running now
	Recovered Recovery  `json:"recovered"`
	Problems  []Problem `json:"problems"`
}

// Check verifies the store: every record has a pool file of the right size,
// every pool file has a record and is read-only, nothing else is in the
// pool, and with Deep every blob hashes to its name. It runs in a writer
// session (so recovery runs first and no commit lands half-way through the
// walk). Records and pool files are compared as two sorted streams, so
// memory stays constant whatever the size of the store.
func (s *Store) Check(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	ss, err := s.Writer(ctx, "fsck")
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	rep := &CheckReport{Recovered: ss.Recovered}
	var mu sync.Mutex
	add := func(p Problem) {
		mu.Lock()
		rep.Problems = append(rep.Problems, p)
		mu.Unlock()
	}
	if s.remote == nil {
		// Strays outside pool/sha256/<xx>/ and live temp files.
		if err := s.checkTop(add, rep); err != nil {
			return nil, err
		}
	}
	meter, err := deepMeter(ss, opts)
	if err != nil {
		return nil, err
	}
	defer meter.Done()
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
		if s.remote != nil {
			jobs *= 2 // reads over the network wait more than they hash
		}
	}
	work := make(chan Blob, jobs*2)
	var wg sync.WaitGroup
	for range jobs {
		wg.Go(func() {
			for b := range work {
				if ctx.Err() != nil {
					continue
				}
				if p, bad := s.rehash(ctx, b); bad {
					add(p)
				}
				meter.Add(b.Size)
				mu.Lock()
				rep.Hashed++
				mu.Unlock()
			}
		})
	}
	good := func(b Blob) {
		rep.Blobs++
		rep.Bytes += b.Size
		if opts.Deep {
			work <- b
		}
	}
	var werr error
	if s.remote != nil {
		werr = s.mergeRemote(ctx, ss, rep, add, good)
	} else {
		werr = ss.db.View(func(txn *badger.Txn) error { return s.mergeWalk(ctx, txn, add, good) })
	}
	close(work)
	wg.Wait()
	if werr != nil {
		return nil, werr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Path < rep.Problems[j].Path })
	return rep, nil
}

// rehash reads blob b back and reports it when its bytes do not hash to
// its name, or cannot be read.
func (s *Store) rehash(ctx context.Context, b Blob) (Problem, bool) {
	if s.remote != nil {
		return hashRemote(ctx, s.remote.Pool(), b)
	}
	_, err := hashFile(s.BlobPath(b.Digest), b.Digest)
	switch {
	case err == nil:
		return Problem{}, false
	case errors.Is(err, ErrCorrupt):
		return Problem{Kind: ProblemCorrupt, Digest: b.Digest, Path: s.BlobPath(b.Digest), Detail: err.Error()}, true
	default:
		return Problem{Kind: ProblemRead, Digest: b.Digest, Path: s.BlobPath(b.Digest), Detail: err.Error()}, true
	}
}

// deepMeter is fsck --deep's meter, sized by the bytes of every blob
// record (a meter that draws nothing without --deep).
func deepMeter(ss *Session, opts CheckOptions) (progress.Meter, error) {
	if !opts.Deep {
		return progress.Factory{}.New("", 0, progress.Bytes), nil
	}
	var total int64
	if err := ss.Blobs(func(b Blob) error { total += b.Size; return nil }); err != nil {
		return nil, err
	}
	return opts.Meters.New("fsck --deep", total, progress.Bytes), nil
}

func (s *Store) checkTop(add func(Problem), rep *CheckReport) error {
	ents, err := os.ReadDir(s.poolPath())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() != blobsDir && e.Name() != ingestDir {
			add(Problem{Kind: ProblemStray, Path: filepath.Join(s.poolPath(), e.Name()), Detail: "does not belong in the pool"})
		}
	}
	// Recovery removed the stale temp files; the ones left are live ingests.
	ents, err = os.ReadDir(s.ingestPath())
	if err != nil {
		return err
	}
	rep.LiveTemps = len(ents)
	return nil
}

// poolFile is a regular file found in pool/sha256/<xx>/ with a valid name.
type poolFile struct {
	d    digest.Digest
	path string
	info fs.FileInfo
}

// poolIter yields the validly named files of pool/sha256 in digest order,
// one directory in memory at a time; everything else is reported as stray.
type poolIter struct {
	root  string
	dirs  []string
	files []poolFile
	add   func(Problem)
}

func (it *poolIter) next() (poolFile, bool, error) {
	for len(it.files) == 0 {
		if len(it.dirs) == 0 {
			return poolFile{}, false, nil
		}
		dir := it.dirs[0]
		it.dirs = it.dirs[1:]
		ents, err := os.ReadDir(filepath.Join(it.root, dir))
		if err != nil {
			return poolFile{}, false, err
		}
		for _, e := range ents {
			p := filepath.Join(it.root, dir, e.Name())
			if !e.Type().IsRegular() {
				it.add(Problem{Kind: ProblemStray, Path: p, Detail: "not a regular file (" + e.Type().String() + ")"})
				continue
			}
			if len(e.Name()) != 64 || !digest.IsLowerHex(e.Name()) || e.Name()[:2] != dir {
				it.add(Problem{Kind: ProblemStray, Path: p, Detail: "name is not the sha256 of a blob in this directory"})
				continue
			}
			info, err := e.Info()
			if err != nil {
				return poolFile{}, false, err
			}
			it.files = append(it.files, poolFile{d: digest.NewDigestFromEncoded(digest.SHA256, e.Name()), path: p, info: info})
		}
	}
	f := it.files[0]
	it.files = it.files[1:]
	return f, true, nil
}

// mergeWalk compares the blob records with the pool files, both in digest
// order, and calls good for every record whose file is present with the
// right size.
func (s *Store) mergeWalk(ctx context.Context, txn *badger.Txn, add func(Problem), good func(Blob)) error {
	ents, err := os.ReadDir(s.blobsPath())
	if err != nil {
		return err
	}
	pi := &poolIter{root: s.blobsPath(), add: add}
	for _, e := range ents {
		if e.IsDir() && len(e.Name()) == 2 && digest.IsLowerHex(e.Name()) {
			pi.dirs = append(pi.dirs, e.Name())
		} else {
			add(Problem{Kind: ProblemStray, Path: filepath.Join(s.blobsPath(), e.Name()), Detail: "not a two-hex-digit directory"})
		}
	}
	o := badger.DefaultIteratorOptions
	o.Prefix = []byte{PrefixBlob}
	o.PrefetchValues = false
	it := txn.NewIterator(o)
	defer it.Close()
	it.Rewind()
	pf, havePF, err := pi.next()
	if err != nil {
		return err
	}
	for it.Valid() || havePF {
		if err := ctx.Err(); err != nil {
			return err
		}
		var rec *Blob
		if it.Valid() {
			d := digestFromKey(it.Item().Key())
			var b Blob
			if err := it.Item().Value(func(v []byte) error { b, err = decodeRecord(d, v); return err }); err != nil {
				return err
			}
			rec = &b
		}
		switch {
		case rec != nil && (!havePF || rec.Digest.Encoded() < pf.d.Encoded()):
			add(Problem{Kind: ProblemMissing, Digest: rec.Digest, Path: s.BlobPath(rec.Digest), Detail: fmt.Sprintf("recorded (%d bytes) but not in the pool", rec.Size)})
			it.Next()
			continue
		case rec == nil || pf.d.Encoded() < rec.Digest.Encoded():
			add(Problem{Kind: ProblemUnrecorded, Digest: pf.d, Path: pf.path, Detail: fmt.Sprintf("in the pool (%d bytes) but has no record", pf.info.Size())})
		default: // same digest
			if pf.info.Size() != rec.Size {
				add(Problem{Kind: ProblemSize, Digest: rec.Digest, Path: pf.path, Detail: fmt.Sprintf("file has %d bytes, record says %d", pf.info.Size(), rec.Size)})
			} else {
				good(*rec)
			}
			if pf.info.Mode().Perm()&0o222 != 0 {
				add(Problem{Kind: ProblemMode, Digest: rec.Digest, Path: pf.path, Detail: fmt.Sprintf("mode %04o, blobs must be read-only", pf.info.Mode().Perm())})
			}
			it.Next()
		}
		pf, havePF, err = pi.next()
		if err != nil {
			return err
		}
	}
	return nil
}
