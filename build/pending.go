package build

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/jsonc"
	"github.com/mephstore/mephstore/publish"
	"github.com/mephstore/mephstore/snapshot"
)

// ErrNoSuchBuild is wrapped when a pending build id matches none.
var ErrNoSuchBuild = errors.New("no such pending build")

// Pending is a build waiting for the next publish of its stream. Its
// record in the store is 'p' + the first 8 bytes of the sha256 of this
// document (stored in the pool) → references: the document first, then
// every blob its items name. gc keeps them while the record exists.
//
// The document holds no time, so the same build made twice is the same
// document: a rebuild adds no bytes to the pool and replaces the record.
type Pending struct {
	ID           string `json:"id,omitempty"` // set when read back
	Stream       string `json:"stream"`
	Label        string `json:"label"`
	Arch         string `json:"arch"`
	Release      string `json:"release"`
	Serial       string `json:"serial"`
	Source       string `json:"source"`
	SourceDigest string `json:"source_sha256"`
	SourceFormat string `json:"source_format"`
	ConfigDigest string `json:"config_sha256"`
	ContentID    string `json:"content_id"`
	// Customization is what was installed and run in the image.
	Customization *Customize       `json:"customization,omitempty"`
	Products      []PendingProduct `json:"products"`
}

// PendingProduct is one product version a build makes.
type PendingProduct struct {
	Name   string                 `json:"name"`
	Fields map[string]string      `json:"fields"`
	Items  map[string]PendingItem `json:"items"`
}

// PendingItem is one item of a pending product: a blob of the pool, where
// it goes in the stream, and the item's other fields (kpackage, …). It is
// written as one flat JSON object, as simplestreams items are.
type PendingItem struct {
	FType  string
	Path   string
	SHA256 string
	Size   int64
	Extra  map[string]string
}

// MarshalJSON writes the item as one flat object, keys sorted.
func (it PendingItem) MarshalJSON() ([]byte, error) {
	m := map[string]any{"ftype": it.FType, "path": it.Path, "sha256": it.SHA256, "size": it.Size}
	for k, v := range it.Extra {
		if _, known := m[k]; !known {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads a flat item object; fields other than the four
// known ones must be strings.
func (it *PendingItem) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	var out PendingItem
	for k, v := range m {
		var err error
		switch k {
		case "ftype":
			err = json.Unmarshal(v, &out.FType)
		case "path":
			err = json.Unmarshal(v, &out.Path)
		case "sha256":
			err = json.Unmarshal(v, &out.SHA256)
		case "size":
			err = json.Unmarshal(v, &out.Size)
		default:
			var s string
			if err = json.Unmarshal(v, &s); err == nil {
				if out.Extra == nil {
					out.Extra = map[string]string{}
				}
				out.Extra[k] = s
			}
		}
		if err != nil {
			return fmt.Errorf("item field %s: %w", k, err)
		}
	}
	*it = out
	return nil
}

// putPending stores the document and the record.
func putPending(ctx context.Context, ss *cas.Session, p *Pending) error {
	doc := *p
	doc.ID = ""
	b, err := json.Marshal(&doc)
	if err != nil {
		return err
	}
	ds, err := ss.PutBytes(ctx, b)
	if err != nil {
		return err
	}
	refs := []cas.Ref{{Kind: cas.RefBlob, Digest: ds[0]}}
	for sum := range usedStaged(p) {
		refs = append(refs, cas.Ref{Kind: cas.RefBlob, Digest: digest.NewDigestFromEncoded(digest.SHA256, sum)})
	}
	raw, _ := hex.DecodeString(ds[0].Encoded())
	var id [8]byte
	copy(id[:], raw)
	p.ID = hex.EncodeToString(id[:])
	return ss.Update(func(txn cas.Txn) error { return cas.PendingBuilds().Put(txn, id, refs) })
}

// ListPending returns the pending builds, oldest id first (ids are
// hashes: the order is only stable).
func ListPending(ss *cas.Session) ([]*Pending, error) {
	var out []*Pending
	err := ss.View(func(txn cas.Txn) error {
		return cas.PendingBuilds().Scan(txn, func(raw [8]byte, refs []cas.Ref) error {
			id := hex.EncodeToString(raw[:])
			if len(refs) == 0 {
				return fmt.Errorf("pending build %s: bad record: no references", id)
			}
			b, err := ss.Store().ReadBlob(refs[0].Digest)
			if err != nil {
				return fmt.Errorf("pending build %s: %w", id, err)
			}
			var p Pending
			if err := json.Unmarshal(b, &p); err != nil {
				return fmt.Errorf("pending build %s: %w", id, err)
			}
			p.ID = id
			out = append(out, &p)
			return nil
		})
	})
	return out, err
}

// MatchPending resolves ids (or unique prefixes of them) to pending builds.
func MatchPending(ss *cas.Session, ids ...string) ([]string, error) {
	all, err := ListPending(ss)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, want := range ids {
		var match []string
		for _, p := range all {
			if want != "" && strings.HasPrefix(p.ID, strings.ToLower(want)) {
				match = append(match, p.ID)
			}
		}
		switch {
		case len(match) == 0:
			return nil, fmt.Errorf("build %q: %w", want, ErrNoSuchBuild)
		case len(match) > 1:
			return nil, fmt.Errorf("build %q: %w: it names %d builds (%s)", want, ErrNoSuchBuild, len(match), strings.Join(match, ", "))
		}
		out = append(out, match[0])
	}
	return out, nil
}

// DropPending removes pending builds by id (or a unique prefix of one).
func DropPending(ss *cas.Session, ids ...string) ([]string, error) {
	matched, err := MatchPending(ss, ids...)
	if err != nil {
		return nil, err
	}
	err = ss.Update(func(txn cas.Txn) error {
		for _, id := range matched {
			var raw [8]byte
			hex.Decode(raw[:], []byte(id))
			if err := cas.PendingBuilds().Delete(txn, raw); err != nil {
				return err
			}
		}
		return nil
	})
	return matched, err
}

// Committed is what CommitPending did.
type Committed struct {
	Builds []string `json:"builds"` // ids committed (their records dropped)
	Result *snapshot.Result
}

// CommitPending commits the stream's pending builds into its next snapshot
// and drops their records. A version the stream already has is left as it
// is and reported in Result.Skipped. With no pending build for the stream
// it returns nil.
func CommitPending(ctx context.Context, repo *snapshot.Repo, stream string) (*Committed, error) {
	ss, err := repo.Store().Reader(ctx)
	if err != nil {
		return nil, err
	}
	all, err := ListPending(ss)
	ss.Close()
	if err != nil {
		return nil, err
	}
	var mine []*Pending
	for _, p := range all {
		if p.Stream == stream {
			mine = append(mine, p)
		}
	}
	if len(mine) == 0 {
		return nil, nil
	}
	var adds []snapshot.NewVersion
	var ids []string
	for _, p := range mine {
		ids = append(ids, p.ID)
		header := []jsonc.Field{
			{Key: "content_id", Value: jsonc.Quote(p.ContentID)},
			{Key: "datatype", Value: jsonc.Quote("image-downloads")}, // as meph2-build writes it
			{Key: "format", Value: jsonc.Quote("products:1.0")},
		}
		for _, pr := range p.Products {
			var fields []jsonc.Field
			for _, k := range slices.Sorted(maps.Keys(pr.Fields)) {
				fields = append(fields, jsonc.Field{Key: k, Value: jsonc.Quote(pr.Fields[k])})
			}
			raw, err := json.Marshal(map[string]any{"items": pr.Items})
			if err != nil {
				return nil, err
			}
			adds = append(adds, snapshot.NewVersion{ContentID: p.ContentID, Header: header, Product: pr.Name,
				ProductFields: fields, Version: p.Serial, Raw: raw})
		}
	}
	res, err := repo.AddVersions(ctx, stream, "publish: commit builds "+strings.Join(ids, ", "), adds)
	if err != nil && !errors.Is(err, snapshot.ErrNothingToDo) {
		return nil, err
	}
	ws, werr := repo.Store().Writer(ctx, "publish: drop committed builds")
	if werr != nil {
		return nil, werr
	}
	defer ws.Close()
	if _, werr := DropPending(ws, ids...); werr != nil {
		return nil, werr
	}
	return &Committed{Builds: ids, Result: res}, ws.Close()
}

// PublishStream is what `publish` does: the stream's pending builds go into
// its next snapshot first (CommitPending; nil when there were none), then
// the head is published.
func PublishStream(ctx context.Context, repo *snapshot.Repo, stream string, o publish.Options) (*Committed, *publish.Result, error) {
	c, err := CommitPending(ctx, repo, stream)
	if err != nil {
		return nil, nil, err
	}
	res, err := publish.Publish(ctx, repo, stream, o)
	return c, res, err
}
