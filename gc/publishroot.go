package gc

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/flock"
	"github.com/mephstore/mephstore/internal/fsx"
	"github.com/mephstore/mephstore/publish"
	"github.com/mephstore/mephstore/snapshot"
)

// PublishReport is what gc did in one publish root.
type PublishReport struct {
	Root          string `json:"root"`
	Missing       bool   `json:"missing,omitempty"` // the root no longer exists
	Streams       int    `json:"streams"`
	ProductsFiles int    `json:"products_files_reaped"`
	IndexVersions int    `json:"index_versions_reaped"` // staging directories of killed publishes
	DataFiles     int    `json:"data_files_reaped"`
	NewOrphans    int    `json:"new_orphans"`
	Rereferenced  int    `json:"rereferenced"`
	Waiting       int    `json:"orphans_waiting"`
	Freed         int64  `json:"bytes_freed"`
}

// publishedRoots lists the publish roots the store remembers.
func publishedRoots(ss *cas.Session) ([]string, error) {
	seen := map[string]bool{}
	err := ss.Settings(publish.PublishedPrefix, func(name, _ string) error {
		root, _, _ := strings.Cut(strings.TrimPrefix(name, publish.PublishedPrefix), "\x00")
		seen[root] = true
		return nil
	})
	out := make([]string, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	slices.Sort(out)
	return out, err
}

func publishOrphanPrefix(root string) []byte {
	return append(append([]byte{cas.PrefixOrphan, 'p'}, root...), 0)
}

// candidate is a file (or staging directory) of a publish root that
// nothing refers to.
type candidate struct {
	rel  string // relative to the root
	kind string // "products", "index", "data"
	size int64
	dir  bool
}

// sweepPublishRoot sweeps one publish root under its exclusive lock.
func sweepPublishRoot(ctx context.Context, s *cas.Store, root string, m *marker, o Options) (*PublishReport, error) {
	rep := &PublishReport{Root: root}
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		rep.Missing = true
		return rep, nil
	}
	lk, err := publish.LockRoot(ctx, root, flock.Exclusive)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	streams, err := publishedStreams(root)
	if err != nil {
		return nil, err
	}
	rep.Streams = len(streams)

	now := s.Now().UTC()
	cutoff := now.Add(-o.Older)
	known, err := orphanRecords(ctx, s, root, o.DryRun)
	if err != nil {
		return nil, err
	}
	all, err := rootCandidates(root, streams, known, now, cutoff, m)
	if err != nil {
		return nil, err
	}

	// Record, then reap.
	var reap []candidate
	newRec := map[string]time.Time{}
	cur := map[string]bool{}
	for _, c := range all {
		cur[c.rel] = true
		since, ok := known[c.rel]
		if !ok {
			since = now
			newRec[c.rel] = now
			rep.NewOrphans++
			if o.Plan != nil {
				o.Plan(Action{Kind: "orphan", Root: root, Name: c.rel, Size: c.size, Since: since})
			}
		}
		if since.After(cutoff) {
			rep.Waiting++
			continue
		}
		reap = append(reap, c)
		if o.Plan != nil {
			o.Plan(Action{Kind: "reap", Root: root, Name: c.rel, Size: c.size, Since: since})
		}
	}
	var stale []string
	for rel := range known {
		if !cur[rel] {
			stale = append(stale, rel)
		}
	}
	rep.Rereferenced = len(stale)
	if o.DryRun {
		for _, c := range reap {
			count(rep, c)
		}
		return rep, nil
	}
	if err := writeOrphanRecords(ctx, s, root, newRec, stale); err != nil {
		return nil, err
	}
	gone, err := reapFiles(ctx, root, reap, rep)
	if err != nil {
		return nil, err
	}
	if err := writeOrphanRecords(ctx, s, root, nil, gone); err != nil {
		return nil, err
	}
	return rep, nil
}

// rootCandidates lists what nothing in the root refers to: products files
// the live indexes do not name and staging directories (those of them old
// enough by the known orphan records are taken as gone), then data files
// that neither a retained snapshot of the store (m) nor a products file
// that stays refers to.
func rootCandidates(root string, streams []string, known map[string]time.Time, now, cutoff time.Time, m *marker) ([]candidate, error) {
	var meta []candidate
	for _, st := range streams {
		c, err := unreferencedMeta(root, st)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", st, err)
		}
		meta = append(meta, c...)
	}
	reapMeta := map[string]bool{}
	for _, c := range meta {
		since, ok := known[c.rel]
		if !ok {
			since = now
		}
		if !since.After(cutoff) {
			reapMeta[c.rel] = true
		}
	}
	refs := map[Sum]struct{}{}
	for _, st := range streams {
		if err := productsRefs(root, st, reapMeta, refs, m.jobs); err != nil {
			return nil, fmt.Errorf("stream %s: %w", st, err)
		}
	}
	data, err := unreferencedData(root, func(sum Sum) bool {
		_, ok := refs[sum]
		return ok || m.has(sum)
	})
	if err != nil {
		return nil, err
	}
	return append(meta, data...), nil
}

// reapFiles removes the candidates from the root, syncs their directories
// and returns what went.
func reapFiles(ctx context.Context, root string, reap []candidate, rep *PublishReport) ([]string, error) {
	dirs := map[string]bool{}
	var gone []string
	for _, c := range reap {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := filepath.Join(root, filepath.FromSlash(c.rel))
		var err error
		if c.dir {
			err = os.RemoveAll(p)
		} else {
			err = os.Remove(p)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reap %s: %w", p, err)
		}
		dirs[filepath.Dir(p)] = true
		gone = append(gone, c.rel)
		count(rep, c)
	}
	for d := range dirs {
		if err := fsx.SyncDir(d); err != nil {
			return nil, err
		}
	}
	return gone, nil
}

func count(rep *PublishReport, c candidate) {
	switch c.kind {
	case "products":
		rep.ProductsFiles++
	case "index":
		rep.IndexVersions++
	default:
		rep.DataFiles++
	}
	rep.Freed += c.size
}

// publishedStreams lists the stream directories of a publish root.
func publishedStreams(root string) ([]string, error) { return publish.Layout{Root: root}.Streams() }

// liveIndex reads the products paths of a stream's live index (relative to
// streams/v1, without their .json or .sjson extension); nil when the stream
// has no index yet.
func liveIndex(root, st string) (map[string]bool, error) {
	p := publish.Layout{Root: root}.Index(st)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var idx struct {
		Index map[string]struct {
			Path string `json:"path"`
		} `json:"index"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w (refusing to sweep a root whose index cannot be read)", p, err)
	}
	out := map[string]bool{}
	for cid, e := range idx.Index {
		rel, ok := strings.CutPrefix(e.Path, publish.MetaDir+"/")
		if !ok || strings.Contains(rel, "/") {
			return nil, fmt.Errorf("%s: %s: path %q is not in %s", p, cid, e.Path, publish.MetaDir)
		}
		out[strings.TrimSuffix(strings.TrimSuffix(rel, ".json"), ".sjson")] = true
	}
	return out, nil
}

// unreferencedMeta lists the products files of a stream that its live index
// does not name, and the staging directories killed publishes left.
func unreferencedMeta(root, st string) ([]candidate, error) {
	live, err := liveIndex(root, st)
	if err != nil {
		return nil, err
	}
	var out []candidate
	lay := publish.Layout{Root: root}
	streams := lay.StreamsDir(st)
	ents, err := os.ReadDir(streams)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() && publish.IsStaging(e.Name()) {
			out = append(out, candidate{rel: path.Join(st, publish.StreamsDir, e.Name()), kind: "index", size: dirSize(filepath.Join(streams, e.Name())), dir: true})
		}
	}
	if live == nil {
		return out, nil
	}
	v1 := lay.MetaDir(st)
	ents, err = os.ReadDir(v1)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, "index.") || strings.HasPrefix(name, ".") {
			continue
		}
		base := strings.TrimSuffix(name, ".gpg")
		base = strings.TrimSuffix(strings.TrimSuffix(base, ".json"), ".sjson")
		if live[base] {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, candidate{rel: path.Join(st, publish.MetaRel(name)), kind: "products", size: fi.Size()})
	}
	return out, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// productsRefs adds the item sha256s of every products file (.json) of the
// stream that stays after this run to refs.
func productsRefs(root, st string, reaped map[string]bool, refs map[Sum]struct{}, jobs int) error {
	v1 := publish.Layout{Root: root}.MetaDir(st)
	ents, err := os.ReadDir(v1)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var files []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), "index.") {
			continue
		}
		if reaped[path.Join(st, publish.MetaRel(e.Name()))] {
			continue
		}
		files = append(files, filepath.Join(v1, e.Name()))
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(files))
	next := make(chan int)
	for range max(1, min(jobs, len(files))) {
		wg.Go(func() {
			for i := range next {
				var sums []Sum
				errs[i] = fileRefs(files[i], func(s Sum) { sums = append(sums, s) })
				mu.Lock()
				for _, s := range sums {
					refs[s] = struct{}{}
				}
				mu.Unlock()
			}
		})
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// fileRefs calls fn with the sha256 of every item of a products file.
func fileRefs(p string, fn func(Sum)) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	_, _, prods, err := snapshot.ParseCatalog(b)
	if err != nil {
		return fmt.Errorf("%s: %w (refusing to sweep a root whose products cannot be read)", p, err)
	}
	for _, pf := range prods {
		if err := snapshot.ItemDigests(pf.Value, fn); err != nil {
			return fmt.Errorf("%s: product %s: %w", p, pf.Key, err)
		}
	}
	return nil
}

// unreferencedData lists the files of the root's data pool for which keep
// is false.
func unreferencedData(root string, keep func(Sum) bool) ([]candidate, error) {
	pool := publish.Layout{Root: root}.DataPool()
	subs, err := os.ReadDir(pool)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, sub := range subs {
		if !sub.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(pool, sub.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			var sum Sum
			if n, err := hex.Decode(sum[:], []byte(e.Name())); err != nil || n != 32 || len(e.Name()) != 64 {
				continue // not ours; left alone
			}
			if keep(sum) {
				continue
			}
			var size int64
			if fi, err := e.Info(); err == nil {
				size = fi.Size()
			}
			out = append(out, candidate{rel: publish.DataPoolRel(sub.Name(), e.Name()), kind: "data", size: size})
		}
	}
	return out, nil
}

// orphanRecords reads the orphan records of a publish root.
func orphanRecords(ctx context.Context, s *cas.Store, root string, dryRun bool) (map[string]time.Time, error) {
	ss, err := s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	out := map[string]time.Time{}
	prefix := publishOrphanPrefix(root)
	err = ss.View(func(txn cas.Txn) error {
		return txn.Scan(prefix, nil, func(k, v []byte) error {
			rel := string(k[len(prefix):])
			t, err := decodeTime(v)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			out[rel] = t
			return nil
		})
	})
	return out, err
}

// writeOrphanRecords sets new records and drops others, in one writer
// session.
func writeOrphanRecords(ctx context.Context, s *cas.Store, root string, set map[string]time.Time, drop []string) error {
	if len(set) == 0 && len(drop) == 0 {
		return nil
	}
	ss, err := s.Writer(ctx, "gc: publish root "+root)
	if err != nil {
		return err
	}
	defer ss.Close()
	wb, err := ss.NewWriteBatch()
	if err != nil {
		return err
	}
	defer wb.Cancel()
	prefix := publishOrphanPrefix(root)
	for rel, t := range set {
		if err := wb.Set(append(slices.Clip(prefix), rel...), encodeTime(t)); err != nil {
			return err
		}
	}
	for _, rel := range drop {
		if err := wb.Delete(append(slices.Clip(prefix), rel...)); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	return ss.Close()
}
