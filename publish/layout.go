package publish

import (
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Layout names the places of a publish root, drawn in doc.go. publish
// writes them and gc sweeps them; no other code spells them out.
type Layout struct{ Root string }

// Names inside a publish root, relative to it or to a stream's directory.
const (
	DataDir     = "data"        // the shared data pool (root), and each stream's link to it
	dataPool    = "data/sha256" // the pool proper: data/sha256/<2 hex>/<64 hex>
	StreamsDir  = "streams"     // under a stream: v1 and the staging directories
	MetaDir     = "streams/v1"  // under a stream: the live index and products files
	stagePrefix = ".v1."        // staging directories, beside streams/v1
	lockFile    = ".publish.lock"
)

// DataRel is where an item's bytes are, relative to a stream's directory
// (through its data link) and to the root alike: data/sha256/ab/ab12….
func DataRel(sum string) string { return dataPool + "/" + sum[:2] + "/" + sum }

// MetaRel is a metadata file's path relative to a stream's directory.
func MetaRel(name string) string { return MetaDir + "/" + name }

// IsStaging says whether a name in a stream's streams/ directory is the
// staging directory of a publish (live, or left by a killed one).
func IsStaging(name string) bool { return strings.HasPrefix(name, stagePrefix) }

// StreamDir is the directory of a published stream.
func (l Layout) StreamDir(stream string) string { return filepath.Join(l.Root, stream) }

// StreamsDir is a stream's streams/ directory.
func (l Layout) StreamsDir(stream string) string { return filepath.Join(l.Root, stream, StreamsDir) }

// MetaDir is a stream's live streams/v1.
func (l Layout) MetaDir(stream string) string {
	return filepath.Join(l.Root, stream, filepath.FromSlash(MetaDir))
}

// Index is a stream's live index.json.
func (l Layout) Index(stream string) string { return filepath.Join(l.MetaDir(stream), "index.json") }

// DataPool is the root's data/sha256 directory.
func (l Layout) DataPool() string { return filepath.Join(l.Root, filepath.FromSlash(dataPool)) }

// DataFile is the path of the data file of sum.
func (l Layout) DataFile(sum string) string {
	return filepath.Join(l.Root, filepath.FromSlash(DataRel(sum)))
}

// DataPoolRel is a path below the data pool, relative to the root.
func DataPoolRel(sub, name string) string { return path.Join(dataPool, sub, name) }

// RootLock is the lock of the whole root (see LockRoot).
func (l Layout) RootLock() string { return filepath.Join(l.Root, lockFile) }

// StreamLock is the lock that makes one publish of a stream at a time.
func (l Layout) StreamLock(stream string) string { return filepath.Join(l.Root, stream, lockFile) }

// Streams lists the published streams of the root: its directories that
// hold a streams/ directory (not the data pool, not hidden ones).
func (l Layout) Streams() ([]string, error) {
	ents, err := os.ReadDir(l.Root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || e.Name() == DataDir || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if fi, err := os.Stat(l.StreamsDir(e.Name())); err == nil && fi.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
