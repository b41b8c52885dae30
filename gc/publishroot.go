package gc

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/publish"
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

// candidate is a file (or staging directory) of a publish root that
// nothing refers to.
type candidate struct {
	rel  string // relative to the root
	kind string // "products", "index", "data"
	size int64
}

// RootPlan is what gc does in one publish root, decided by planRoot from
// what nothing refers to, the root's orphan records and the clock alone.
type RootPlan struct {
	Root    string   `json:"root"`
	Missing bool     `json:"missing,omitempty"` // the root no longer exists
	Streams int      `json:"streams"`
	Orphan  []Step   `json:"record_orphans"` // first found now: recorded
	Reap    []Step   `json:"reap"`           // orphaned at or before the cutoff: deleted
	Waiting int      `json:"orphans_waiting"`
	Forget  []string `json:"forget_records"` // records of files referenced again, or gone
}

// planRoot decides the sweep of a root: all is what nothing refers to now,
// known the orphan records (path → first found).
func planRoot(root string, all []candidate, known map[string]time.Time, now, cutoff time.Time) RootPlan {
	p := RootPlan{Root: root}
	cur := map[string]bool{}
	for _, c := range all {
		cur[c.rel] = true
		since, ok := known[c.rel]
		if !ok {
			since = now
			p.Orphan = append(p.Orphan, Step{Root: root, Name: c.rel, Kind: c.kind, Size: c.size, Since: now, Reason: reasons[c.kind]})
		}
		if since.After(cutoff) {
			p.Waiting++
			continue
		}
		p.Reap = append(p.Reap, Step{Root: root, Name: c.rel, Kind: c.kind, Size: c.size, Since: since, Reason: reasons[c.kind] + reapReason})
	}
	for rel := range known {
		if !cur[rel] {
			p.Forget = append(p.Forget, rel)
		}
	}
	slices.Sort(p.Forget)
	return p
}

// reasons says why each kind of file of a publish root is an orphan.
var reasons = map[string]string{
	"products": "no live index names this products file",
	"index":    "staging directory of a publish that was killed",
	"data":     "no products file and no retained snapshot refers to this data file",
}

const reapReason = ", orphaned at least --older ago"

// planPublishRoot plans the sweep of one publish root, reading only.
func planPublishRoot(ctx context.Context, s *cas.Store, root string, m *marker, now time.Time, older time.Duration) (*RootPlan, error) {
	t, err := publish.OpenTarget(root)
	if err != nil {
		return nil, err
	}
	if _, err := t.Stat(ctx, ""); errors.Is(err, fs.ErrNotExist) {
		return &RootPlan{Root: root, Missing: true}, nil
	}
	return rootPlan(ctx, s, t, m, now, older)
}

// rootPlan lists a root's streams, what nothing refers to and its orphan
// records, and plans.
func rootPlan(ctx context.Context, s *cas.Store, t publish.Target, m *marker, now time.Time, older time.Duration) (*RootPlan, error) {
	streams, err := publish.Streams(ctx, t)
	if err != nil {
		return nil, err
	}
	known, err := orphanRecords(ctx, s, t.String())
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-older)
	all, err := rootCandidates(ctx, t, streams, known, now, cutoff, m)
	if err != nil {
		return nil, err
	}
	p := planRoot(t.String(), all, known, now, cutoff)
	p.Streams = len(streams)
	return &p, nil
}

// sweepPublishRoot executes the plan of a publish root under its exclusive
// lock: it plans again (publishes may have run since), records the new
// orphans both plans agree on, and deletes what both plans reap.
func sweepPublishRoot(ctx context.Context, s *cas.Store, planned *RootPlan, m *marker, o Options) (*PublishReport, error) {
	rep := &PublishReport{Root: planned.Root, Missing: planned.Missing}
	if planned.Missing {
		return rep, nil
	}
	t, err := publish.OpenTarget(planned.Root)
	if err != nil {
		return nil, err
	}
	unlock, err := t.Lock(ctx, "", true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	now := s.Now().UTC()
	cur, err := rootPlan(ctx, s, t, m, now, o.Older)
	if err != nil {
		return nil, err
	}
	agreed := intersect(cur, planned)
	rep.Streams, rep.NewOrphans, rep.Waiting, rep.Rereferenced = cur.Streams, len(agreed.Orphan), cur.Waiting, len(cur.Forget)
	newRec := map[string]time.Time{}
	for _, st := range agreed.Orphan {
		newRec[st.Name] = now
		if o.Plan != nil {
			o.Plan(Action{Kind: "orphan", Root: st.Root, Name: st.Name, Size: st.Size, Since: now})
		}
	}
	if err := writeOrphanRecords(ctx, s, t.String(), newRec, cur.Forget); err != nil {
		return nil, err
	}
	gone, err := reapFiles(ctx, t, agreed.Reap, o, rep)
	if err != nil {
		return nil, err
	}
	return rep, writeOrphanRecords(ctx, s, t.String(), nil, gone)
}

// intersect keeps the orphans and reaps of cur that planned has too.
func intersect(cur, planned *RootPlan) RootPlan {
	in := func(steps []Step) map[string]bool {
		out := map[string]bool{}
		for _, st := range steps {
			out[st.Name] = true
		}
		return out
	}
	po, pr := in(planned.Orphan), in(planned.Reap)
	var out RootPlan
	for _, st := range cur.Orphan {
		if po[st.Name] {
			out.Orphan = append(out.Orphan, st)
		}
	}
	for _, st := range cur.Reap {
		if pr[st.Name] {
			out.Reap = append(out.Reap, st)
		}
	}
	return out
}

// rootCandidates lists what nothing in the root refers to: products files
// the live indexes do not name and staging directories (those of them old
// enough by the known orphan records are taken as gone), then data files
// that neither a retained snapshot of the store (m) nor a products file
// that stays refers to.
func rootCandidates(ctx context.Context, t publish.Target, streams []string, known map[string]time.Time, now, cutoff time.Time, m *marker) ([]candidate, error) {
	var meta []candidate
	for _, st := range streams {
		c, err := unreferencedMeta(ctx, t, st)
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
		if err := productsRefs(ctx, t, st, reapMeta, refs, m.jobs); err != nil {
			return nil, fmt.Errorf("stream %s: %w", st, err)
		}
	}
	keep := func(sum Sum) bool {
		_, ok := refs[sum]
		return ok || m.has(sum)
	}
	out := meta
	for _, pool := range dataPools(t, streams) {
		data, err := unreferencedData(ctx, t, pool, keep)
		if err != nil {
			return nil, err
		}
		out = append(out, data...)
	}
	return out, nil
}

// reapFiles deletes the steps' files from the target, makes that durable
// and returns what went.
func reapFiles(ctx context.Context, t publish.Target, reap []Step, o Options, rep *PublishReport) ([]string, error) {
	var gone []string
	for _, st := range reap {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := t.Delete(ctx, st.Name); err != nil {
			return nil, fmt.Errorf("reap %s/%s: %w", t, st.Name, err)
		}
		gone = append(gone, st.Name)
		count(rep, st)
		if o.Plan != nil {
			o.Plan(Action{Kind: "reap", Root: st.Root, Name: st.Name, Size: st.Size, Since: st.Since})
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	return gone, t.Sync(ctx)
}

// count adds a reaped step to the report.
func count(rep *PublishReport, st Step) {
	switch st.Kind {
	case "products":
		rep.ProductsFiles++
	case "index":
		rep.IndexVersions++
	default:
		rep.DataFiles++
	}
	rep.Freed += st.Size
}

// readAll reads a whole file of a target.
func readAll(ctx context.Context, t publish.Target, rel string) ([]byte, error) {
	f, err := t.Open(ctx, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// liveIndex reads the products paths of a stream's live index (relative to
// streams/v1, without their .json or .sjson extension); nil when the stream
// has no index yet.
func liveIndex(ctx context.Context, t publish.Target, st string) (map[string]bool, error) {
	p := publish.Layout{}.Index(st)
	b, err := readAll(ctx, t, p)
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
func unreferencedMeta(ctx context.Context, t publish.Target, st string) ([]candidate, error) {
	live, err := liveIndex(ctx, t, st)
	if err != nil {
		return nil, err
	}
	lay := publish.Layout{}
	var out []candidate
	err = t.List(ctx, lay.StreamsDir(st), func(e publish.Entry) error {
		if e.Dir && publish.IsStaging(e.Name) {
			rel := path.Join(lay.StreamsDir(st), e.Name)
			size, err := treeSize(ctx, t, rel)
			out = append(out, candidate{rel: rel, kind: "index", size: size})
			return err
		}
		return nil
	})
	if err != nil || live == nil {
		return out, err
	}
	err = t.List(ctx, lay.MetaDir(st), func(e publish.Entry) error {
		name := e.Name
		if e.Dir || publish.IsIndex(name) || strings.HasPrefix(name, ".") {
			return nil
		}
		base := strings.TrimSuffix(name, ".gpg")
		base = strings.TrimSuffix(strings.TrimSuffix(base, ".json"), ".sjson")
		if !live[base] {
			out = append(out, candidate{rel: lay.Meta(st, name), kind: "products", size: e.Size})
		}
		return nil
	})
	return out, err
}

// treeSize is the bytes of the files below dir.
func treeSize(ctx context.Context, t publish.Target, dir string) (int64, error) {
	var n int64
	err := t.List(ctx, dir, func(e publish.Entry) error {
		if !e.Dir {
			n += e.Size
			return nil
		}
		sub, err := treeSize(ctx, t, path.Join(dir, e.Name))
		n += sub
		return err
	})
	return n, err
}

// productsRefs adds the item sha256s of every products file (.json) of the
// stream that stays after this run to refs.
func productsRefs(ctx context.Context, t publish.Target, st string, reaped map[string]bool, refs map[Sum]struct{}, jobs int) error {
	lay := publish.Layout{}
	var files []string
	err := t.List(ctx, lay.MetaDir(st), func(e publish.Entry) error {
		rel := lay.Meta(st, e.Name)
		if !e.Dir && strings.HasSuffix(e.Name, ".json") && !publish.IsIndex(e.Name) && !reaped[rel] {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(files))
	next := make(chan int)
	for range max(1, min(jobs, len(files))) {
		wg.Go(func() {
			for i := range next {
				var sums []Sum
				errs[i] = fileRefs(ctx, t, files[i], func(s Sum) { sums = append(sums, s) })
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
func fileRefs(ctx context.Context, t publish.Target, rel string, fn func(Sum)) error {
	b, err := readAll(ctx, t, rel)
	if err != nil {
		return err
	}
	_, _, prods, err := catalog.ParseCatalog(b)
	if err != nil {
		return fmt.Errorf("%s: %w (refusing to sweep a root whose products cannot be read)", rel, err)
	}
	for _, pf := range prods {
		if err := catalog.ItemDigests(pf.Value, fn); err != nil {
			return fmt.Errorf("%s: product %s: %w", rel, pf.Key, err)
		}
	}
	return nil
}

// dataPools are the data pools of a root's streams: the one shared pool
// where streams link to it, each stream's own where a target has no links
// (a bucket). A file is kept while any stream or retained snapshot refers
// to its bytes (for per-stream pools that keeps more than needed, never
// less).
func dataPools(t publish.Target, streams []string) []string {
	zero := strings.Repeat("0", 64)
	pools := []string{publish.Layout{}.DataPool()}
	for _, st := range streams {
		p := path.Dir(path.Dir(t.DataPath(st, zero)))
		if !slices.Contains(pools, p) {
			pools = append(pools, p)
		}
	}
	return pools
}

// unreferencedData lists the files of a data pool for which keep is
// false.
func unreferencedData(ctx context.Context, t publish.Target, pool string, keep func(Sum) bool) ([]candidate, error) {
	var subs []string
	err := t.List(ctx, pool, func(e publish.Entry) error {
		if e.Dir {
			subs = append(subs, e.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, sub := range subs {
		err := t.List(ctx, path.Join(pool, sub), func(e publish.Entry) error {
			var sum Sum
			if n, err := hex.Decode(sum[:], []byte(e.Name)); err != nil || n != 32 || len(e.Name) != 64 || e.Dir {
				return nil // not ours; left alone
			}
			if !keep(sum) {
				out = append(out, candidate{rel: path.Join(pool, sub, e.Name), kind: "data", size: e.Size})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// orphanRecords reads the orphan records of a publish root.
func orphanRecords(ctx context.Context, s *cas.Store, root string) (map[string]time.Time, error) {
	ss, err := s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	out := map[string]time.Time{}
	err = ss.View(func(txn cas.Txn) error {
		return rootOrphans(root).Scan(txn, func(rel string, t time.Time) error {
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
	tab := rootOrphans(root)
	for rel, t := range set {
		if err := tab.PutIn(wb, rel, t); err != nil {
			return err
		}
	}
	for _, rel := range drop {
		if err := tab.DeleteIn(wb, rel); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	return ss.Close()
}
