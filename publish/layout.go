package publish

import (
	"path"
	"strings"
)

// Layout names the places of a publish tree, drawn in doc.go, as
// slash-separated paths relative to the target's root. publish writes
// them and gc sweeps them; no other code spells them out.
type Layout struct{}

// Names inside a publish root, relative to it or to a stream's directory.
const (
	DataDir     = "data"        // the shared data pool (root), and each stream's link to it
	dataPool    = "data/sha256" // the pool proper: data/sha256/<2 hex>/<64 hex>
	StreamsDir  = "streams"     // under a stream: v1 and the staging directories
	MetaDir     = "streams/v1"  // under a stream: the live index and products files
	stagePrefix = ".v1."        // staging and work directories, beside streams/v1
	lockFile    = ".publish.lock"
	// IndexFile is a stream's index, the file a reader starts from.
	IndexFile = "index.json"
)

// DataRel is where an item's bytes are, relative to a stream's directory
// (through its data link) and to the root alike: data/sha256/ab/ab12….
func DataRel(sum string) string { return dataPool + "/" + sum[:2] + "/" + sum }

// MetaRel is a metadata file's path relative to a stream's directory.
func MetaRel(name string) string { return MetaDir + "/" + name }

// IsStaging says whether a name in a stream's streams/ directory is the
// staging or work directory of a publish (live, or left by a killed one).
func IsStaging(name string) bool { return strings.HasPrefix(name, stagePrefix) }

// IsIndex says whether a name in streams/v1 is one of the index files.
func IsIndex(name string) bool { return strings.HasPrefix(name, "index.") }

// StreamsDir is a stream's streams/ directory.
func (Layout) StreamsDir(stream string) string { return path.Join(stream, StreamsDir) }

// MetaDir is a stream's live streams/v1.
func (Layout) MetaDir(stream string) string { return path.Join(stream, MetaDir) }

// Meta is the file name in a stream's streams/v1.
func (l Layout) Meta(stream, name string) string { return path.Join(l.MetaDir(stream), name) }

// Index is a stream's live index.json.
func (l Layout) Index(stream string) string { return l.Meta(stream, IndexFile) }

// DataPool is the root's data/sha256 directory.
func (Layout) DataPool() string { return dataPool }

// DataFile is the data file of sum.
func (Layout) DataFile(sum string) string { return DataRel(sum) }
