package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/fsx"
	"github.com/mephstore/mephstore/internal/jsonc"
	"github.com/mephstore/mephstore/internal/pgp"
)

// The meph2-util compatible commands: find-orphans and reap-orphans work on
// a simplestreams tree that is not in a store, and share meph2-util's orphan
// file: a JSON object mapping a path relative to DATA_DIR to the time it was
// first found unreferenced, like "Sun, 22 Nov 2026 03:32:32 +0000".
//
// find-orphans also writes ORPHANS.streams.json beside the orphan file,
// naming DATA_DIR and the stream indexes it read; reap-orphans reads the
// same streams again and never deletes a file they refer to now.

// OrphanTimeFormat is how the orphan file writes times.
const OrphanTimeFormat = "Mon, 02 Jan 2006 15:04:05 -0700"

// ErrBadOrphanFile is wrapped when an orphan file cannot be read.
var ErrBadOrphanFile = errors.New("not a valid orphan file")

// TreeOptions tune find-orphans and reap-orphans.
type TreeOptions struct {
	Keyring string // verifies .sjson indexes and products files; "" reads the .json twins
	Older   time.Duration
	DryRun  bool
	Now     func() time.Time
	Jobs    int
	Plan    func(Action)
}

// streamsRecord is the sidecar of an orphan file.
type streamsRecord struct {
	DataDir string   `json:"data_dir"`
	Streams []string `json:"streams"`
	Keyring string   `json:"keyring,omitempty"`
}

// SidecarPath is where find-orphans records the streams it read.
func SidecarPath(orphanFile string) string {
	return strings.TrimSuffix(orphanFile, ".json") + ".streams.json"
}

// TreeReport is what find-orphans or reap-orphans did.
type TreeReport struct {
	Files        int     `json:"files"`      // files walked (find-orphans)
	Referenced   int     `json:"referenced"` // item paths the streams name
	Orphans      int     `json:"orphans"`    // entries in the orphan file afterwards
	NewOrphans   int     `json:"new_orphans"`
	Rereferenced int     `json:"rereferenced"` // entries dropped: referenced again
	Vanished     int     `json:"vanished"`     // entries dropped: the file is gone
	Reaped       int     `json:"reaped"`
	Freed        int64   `json:"bytes_freed"`
	Seconds      float64 `json:"seconds"`
}

// FindOrphans records in orphanFile every file under dataDir (but for its
// streams/ and .data/ directories) that none of the streams refers to.
// streams are index files (index.json, index.sjson) or directories holding
// streams/v1/index.*; with none, dataDir itself.
func FindOrphans(ctx context.Context, orphanFile, dataDir string, streams []string, o TreeOptions) (*TreeReport, error) {
	start := time.Now()
	now := o.now()
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("data directory %s: not a directory", dataDir)
	}
	known := map[string]string{}
	if _, err := os.Stat(orphanFile); err == nil {
		if known, err = ReadOrphanFile(orphanFile); err != nil {
			return nil, err
		}
	}
	if len(streams) == 0 {
		streams = []string{dataDir}
	}
	for i, s := range streams {
		if streams[i], err = filepath.Abs(s); err != nil {
			return nil, err
		}
	}
	// Read the streams and walk the tree at the same time: one is mostly
	// JSON scanning, the other mostly system calls.
	var files []string
	walked := make(chan error, 1)
	go func() {
		var err error
		files, err = walkData(ctx, dataDir, 2*o.jobs())
		walked <- err
	}()
	refs, err := treeRefs(ctx, streams, o)
	if werr := <-walked; err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	rep := &TreeReport{Referenced: len(refs)}
	rep.Files = len(files)
	out := map[string]string{}
	stamp := now.Format(OrphanTimeFormat)
	for _, f := range files {
		if refs[f] {
			continue
		}
		if t, ok := known[f]; ok {
			out[f] = t
			continue
		}
		out[f] = stamp
		rep.NewOrphans++
		if o.Plan != nil {
			o.Plan(Action{Kind: "orphan", Name: f, Since: now})
		}
	}
	for k := range known {
		if _, ok := out[k]; !ok {
			if refs[k] {
				rep.Rereferenced++
			} else {
				rep.Vanished++
			}
		}
	}
	rep.Orphans = len(out)
	if !o.DryRun {
		side, err := json.MarshalIndent(streamsRecord{DataDir: dataDir, Streams: streams, Keyring: o.Keyring}, "", " ")
		if err != nil {
			return nil, err
		}
		if err := fsx.WriteFileAtomic(SidecarPath(orphanFile), append(side, '\n'), 0o644); err != nil {
			return nil, err
		}
		if err := writeOrphanFile(orphanFile, out); err != nil {
			return nil, err
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// ReapOrphans deletes the files of orphanFile orphaned for longer than
// o.Older that the recorded streams (or streams, when given) do not refer
// to now, and rewrites the orphan file without them. Directories emptied
// are removed up to, never including, dataDir.
func ReapOrphans(ctx context.Context, orphanFile, dataDir string, streams []string, o TreeOptions) (*TreeReport, error) {
	start := time.Now()
	now := o.now()
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	known, err := ReadOrphanFile(orphanFile)
	if err != nil {
		return nil, err
	}
	if len(streams) == 0 {
		b, err := os.ReadFile(SidecarPath(orphanFile))
		if err != nil {
			return nil, fmt.Errorf("%s: no record of the streams the orphan file was made from (%w); run 'mephstore find-orphans' first, or name the stream indexes", orphanFile, err)
		}
		var side streamsRecord
		if err := json.Unmarshal(b, &side); err != nil || len(side.Streams) == 0 {
			return nil, fmt.Errorf("%s: not a streams record", SidecarPath(orphanFile))
		}
		streams = side.Streams
		if o.Keyring == "" {
			o.Keyring = side.Keyring
		}
	}
	refs, err := treeRefs(ctx, streams, o)
	if err != nil {
		return nil, fmt.Errorf("re-reading the streams: %w (nothing deleted)", err)
	}
	rep := &TreeReport{Referenced: len(refs)}
	keep := map[string]string{}
	var reap []string
	for rel, when := range known {
		t, err := time.Parse(OrphanTimeFormat, when)
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %q: time %q: want like %q", orphanFile, ErrBadOrphanFile, rel, when, OrphanTimeFormat)
		}
		if err := safeRel(rel); err != nil {
			return nil, fmt.Errorf("%s: %w: %w", orphanFile, ErrBadOrphanFile, err)
		}
		switch {
		case refs[rel]:
			rep.Rereferenced++
		case !t.Add(o.Older).Before(now):
			keep[rel] = when
		default:
			reap = append(reap, rel)
			if o.Plan != nil {
				o.Plan(Action{Kind: "reap", Name: rel, Since: t})
			}
		}
	}
	slices.Sort(reap)
	if o.DryRun {
		rep.Reaped = len(reap)
		rep.Orphans = len(keep) + len(reap)
		rep.Seconds = time.Since(start).Seconds()
		return rep, nil
	}
	freed, gone, err := unlinkAll(ctx, dataDir, reap, o.removers())
	rep.Reaped, rep.Freed = gone, freed
	rep.Vanished = len(reap) - gone
	if err != nil {
		// Keep the entries not reaped for the next run.
		for _, rel := range reap {
			if _, serr := os.Lstat(filepath.Join(dataDir, rel)); serr == nil {
				keep[rel] = known[rel]
			}
		}
		if werr := writeOrphanFile(orphanFile, keep); werr != nil {
			return rep, errors.Join(err, werr)
		}
		return rep, err
	}
	rep.Orphans = len(keep)
	if err := writeOrphanFile(orphanFile, keep); err != nil {
		return rep, err
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

func (o TreeOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o TreeOptions) jobs() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return 4
}

// removers is how many removals (unlinks of files, rmdirs of the
// directories they leave empty) reap-orphans runs at once. A removal
// mostly waits for the device rather than for a processor (a disk mounted
// with discard discards the blocks an unlink or an rmdir frees before the
// call returns; elsewhere the journal), so more of them overlap than
// there are processors: at 77k items (41k files, 27k directories) a reap
// took 6.1 s with 32 at once against 8.3 s with 4 (docs/benchmarks.md).
func (o TreeOptions) removers() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return 32
}

// safeRel refuses paths that could leave the data directory.
func safeRel(rel string) error {
	if rel == "" || filepath.IsAbs(rel) || filepath.Clean(rel) != rel || rel == "." || strings.HasPrefix(rel, "../") || rel == ".." {
		return fmt.Errorf("path %q is not a plain path inside the data directory", rel)
	}
	return nil
}

// ReadOrphanFile reads an orphan file.
func ReadOrphanFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("orphan file %s: %w", path, err)
	}
	out := map[string]string{}
	valid := map[string]bool{} // times seen (most entries share a few)
	end, err := jsonc.Members(b, 0, func(k []byte, v int) (int, error) {
		end, err := jsonc.Skip(b, v)
		if err != nil {
			return v, err
		}
		when, ok := jsonc.String(b[v:end])
		if !ok {
			return v, fmt.Errorf("%q: %s is not a time string", k, b[v:end])
		}
		if !valid[when] {
			if _, err := time.Parse(OrphanTimeFormat, when); err != nil {
				return v, fmt.Errorf("%q: time %q: want like %q", k, when, OrphanTimeFormat)
			}
			valid[when] = true
		}
		out[string(k)] = when
		return end, nil
	})
	if err == nil && len(bytes.TrimSpace(b[end:])) > 0 {
		err = fmt.Errorf("data after the object at byte %d", end)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrBadOrphanFile, err)
	}
	return out, nil
}

// writeOrphanFile writes the orphan file atomically, sorted, indented by
// one space as meph2-util writes it.
func writeOrphanFile(path string, m map[string]string) error {
	keys := make([]string, 0, len(m))
	size := 3
	for k, v := range m {
		keys = append(keys, k)
		size += len(k) + len(v) + 10
	}
	slices.Sort(keys)
	// One buffer of the right size: growing one by doubling costs more
	// than the rest of find-orphans on a 200k-entry file.
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n "...)
		b = jsonc.AppendString(b, k)
		b = append(b, ": "...)
		b = jsonc.AppendString(b, m[k])
	}
	if len(keys) > 0 {
		b = append(b, '\n')
	}
	b = append(b, "}\n"...)
	if path == "-" {
		_, err := os.Stdout.Write(b)
		return err
	}
	return fsx.WriteFileAtomic(path, b, 0o644)
}

// walkData lists the files under dataDir (relative, slash-separated),
// skipping its top-level streams/ and .data/ like meph2-util (and any other
// top-level dot file or directory, such as a publish lock), and not
// following symlinks to directories.
func walkData(ctx context.Context, dataDir string, jobs int) ([]string, error) {
	topDot := func(rel string) bool { return !strings.Contains(rel, "/") && strings.HasPrefix(rel, ".") }
	return fsx.ListFiles(ctx, dataDir, jobs,
		func(rel string) bool { return rel == "streams" || topDot(rel) },
		topDot) // DATA_DIR's own dot files (a publish lock)
}

// treeRefs reads the streams and returns every item path they name.
func treeRefs(ctx context.Context, streams []string, o TreeOptions) (map[string]bool, error) {
	var kr pgp.Keyring
	if o.Keyring != "" {
		var err error
		if kr, err = pgp.ReadKeyring(o.Keyring); err != nil {
			return nil, err
		}
	}
	refs := map[string]bool{}
	for _, s := range streams {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		idx, err := findIndex(s, kr != nil)
		if err != nil {
			return nil, err
		}
		// Paths in an index are relative to the mirror root: the
		// directory holding streams/.
		mroot := filepath.Dir(filepath.Dir(filepath.Dir(idx)))
		b, err := readMeta(idx, kr)
		if err != nil {
			return nil, err
		}
		var index struct {
			Index map[string]struct {
				Path string `json:"path"`
			} `json:"index"`
		}
		if err := json.Unmarshal(b, &index); err != nil {
			return nil, fmt.Errorf("%s: %w", idx, err)
		}
		for cid, e := range index.Index {
			if err := safeRel(e.Path); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", idx, cid, err)
			}
			p := filepath.Join(mroot, e.Path)
			if kr == nil && strings.HasSuffix(p, ".sjson") {
				p = strings.TrimSuffix(p, ".sjson") + ".json"
			}
			err = withMeta(p, kr, func(b []byte) error {
				return catalog.EachItemPath(b, func(path string) error {
					refs[path] = true
					return nil
				})
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	return refs, nil
}

// findIndex resolves a stream argument to its index file: the file itself,
// or DIR/streams/v1/index.sjson (signed) or index.json.
func findIndex(s string, signed bool) (string, error) {
	fi, err := os.Stat(s)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", s, err)
	}
	if !fi.IsDir() {
		if signed || !strings.HasSuffix(s, ".sjson") {
			return s, nil
		}
		twin := strings.TrimSuffix(s, ".sjson") + ".json"
		if _, err := os.Stat(twin); err == nil {
			return twin, nil
		}
		return "", fmt.Errorf("stream %s: signed index without a .json twin: give --keyring", s)
	}
	names := []string{"index.json", "index.sjson"}
	if signed {
		names = []string{"index.sjson", "index.json"}
	}
	for _, n := range names {
		p := filepath.Join(s, "streams", "v1", n)
		if _, err := os.Stat(p); err == nil {
			if strings.HasSuffix(p, ".sjson") && !signed {
				return "", fmt.Errorf("stream %s: signed index only: give --keyring", s)
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("stream %s: no streams/v1/index.json or index.sjson", s)
}

func readMeta(p string, kr pgp.Keyring) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if kr != nil && strings.HasSuffix(p, ".sjson") {
		return pgp.VerifyClearsigned(p, b, kr)
	}
	return b, nil
}

// withMeta calls fn with the content of a products file, mapped rather
// than read (they run to hundreds of megabytes), and verified first when
// it is signed and kr is set.
func withMeta(p string, kr pgp.Keyring, fn func([]byte) error) error {
	m, err := fsx.MapFile(p)
	if err != nil {
		return err
	}
	defer m.Close()
	return fsx.Guard(p, func() error {
		if kr != nil && strings.HasSuffix(p, ".sjson") {
			b, err := pgp.VerifyClearsigned(p, m.Data, kr)
			if err != nil {
				return err
			}
			return fn(b)
		}
		return fn(m.Data)
	})
}
