package snapshot

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"

	"github.com/mephstore/mephstore/internal/jsonc"
)

// PromoteOptions select what promote copies.
type PromoteOptions struct {
	Version string
	Filters []catalog.Filter
	Label   string // label to rename to; default: the destination stream's
	DryRun  bool
}

// relabel renames the "<prefix><src label>:" start of s to the dst label.
func relabel(s, prefix, src, dst string) string {
	if strings.HasPrefix(s, prefix+src+":") {
		return prefix + dst + ":" + s[len(prefix+src+":"):]
	}
	return s
}

// Promote copies the versions called o.Version that match the filters from
// src's head into dst's next snapshot, renaming com.ubuntu.maas.<src label>:
// to com.ubuntu.maas.<dst label>: in product names and content ids and
// setting the products' label. Items are copied as they are: no data moves.
// Versions dst already has are reported as skipped.
func (r *Repo) Promote(ctx context.Context, src, dst string, o PromoteOptions) (*Result, error) {
	sst, err := r.Stream(ctx, src)
	if err != nil {
		return nil, err
	}
	sdoc, err := r.Doc(sst.Head)
	if err != nil {
		return nil, err
	}
	op := fmt.Sprintf("promote %s %s %s", src, dst, o.Version)
	for _, f := range o.Filters {
		op += " " + f.String()
	}
	return r.change(ctx, dst, op, o.DryRun, func(dst *Stream, e *editor) error {
		label := o.Label
		if label == "" {
			label = dst.Label
		}
		if err := ValidName("label", label); err != nil {
			return err
		}
		found := 0
		has := func(ref *ProductRef) bool { return ref.Has(o.Version) }
		pf := r.prefetch(productRefs(sdoc, has))
		defer pf.close()
		for ci := range sdoc.Catalogs {
			scat := &sdoc.Catalogs[ci]
			sheader, err := scat.HeaderFields()
			if err != nil {
				return err
			}
			dstID := relabel(scat.ContentID, "com.ubuntu.maas:", sst.Label, label)
			for range scat.Products {
				sp, err := pf.next()
				if err != nil {
					return err
				}
				if sp == nil {
					continue // no such version
				}
				v, err := sp.version(o.Version)
				if err != nil {
					return err
				}
				if v == nil || !catalog.VersionMatches(o.Filters, sheader, sp.product(), v) {
					continue
				}
				found++
				dstName := relabel(sp.Name, "com.ubuntu.maas.", sst.Label, label)
				dp, err := e.load(dstID, dstName)
				if err != nil {
					return err
				}
				if dp == nil {
					dp = &shallow{Name: dstName, Fields: jsonc.Set(append([]jsonc.Field(nil), sp.Fields...), "label", jsonc.Quote(label))}
					h := append([]jsonc.Field(nil), sheader...)
					e.newCatalog(dstID, jsonc.Set(h, "content_id", jsonc.Quote(dstID)))
				}
				ref := VersionRef{Product: dstName, Version: v.Name}
				i, _ := sp.find(o.Version)
				added, err := dp.add(v.Name, sp.Versions[i].Value)
				if err != nil {
					return err
				}
				if !added {
					e.res.Skipped = append(e.res.Skipped, ref)
					continue
				}
				e.res.Added = append(e.res.Added, ref)
				if err := e.put(ctx, dstID, dp); err != nil {
					return err
				}
			}
		}
		if found == 0 {
			return fmt.Errorf("stream %s: %w %s%s", src, ErrNoSuchVersion, o.Version, filterNote(o.Filters))
		}
		return nil
	})
}

func filterNote(fs []catalog.Filter) string {
	if len(fs) == 0 {
		return ""
	}
	var s []string
	for _, f := range fs {
		s = append(s, f.String())
	}
	return " matching " + strings.Join(s, " ")
}

// CleanMD keeps the max newest versions (in CompareVersions order) of every
// product that has a version matching the filters.
func (r *Repo) CleanMD(ctx context.Context, name string, max int, filters []catalog.Filter, dryRun bool) (*Result, error) {
	if max < 0 {
		return nil, fmt.Errorf("clean-md: --max %d: must not be negative", max)
	}
	op := fmt.Sprintf("clean-md %s --max %d", name, max)
	for _, f := range filters {
		op += " " + f.String()
	}
	return r.change(ctx, name, op, dryRun, func(st *Stream, e *editor) error {
		more := func(ref *ProductRef) bool { return ref.Versions > max }
		return e.eachProduct(more, func(cat *Catalog, header []jsonc.Field, p *shallow) error {
			if len(p.Versions) <= max {
				return nil
			}
			if match, err := anyVersionMatches(filters, header, p); err != nil || !match {
				return err
			}
			names := p.names()
			order := catalog.NewestFirstNames(names)
			for _, i := range order[max:] {
				if _, err := p.remove(names[i]); err != nil {
					return err
				}
				e.res.Removed = append(e.res.Removed, VersionRef{Product: p.Name, Version: names[i]})
			}
			return e.put(ctx, cat.ContentID, p)
		})
	})
}

func anyVersionMatches(fs []catalog.Filter, header []jsonc.Field, p *shallow) (bool, error) {
	if len(fs) == 0 {
		return true, nil
	}
	for _, v := range p.Versions {
		pv, err := p.version(v.Key)
		if err != nil {
			return false, err
		}
		if catalog.VersionMatches(fs, header, p.product(), pv) {
			return true, nil
		}
	}
	return false, nil
}

// Remove removes the version called version from every product where it
// matches the filters.
func (r *Repo) Remove(ctx context.Context, name, version string, filters []catalog.Filter, dryRun bool) (*Result, error) {
	op := fmt.Sprintf("remove %s %s", name, version)
	for _, f := range filters {
		op += " " + f.String()
	}
	return r.change(ctx, name, op, dryRun, func(st *Stream, e *editor) error {
		has := func(ref *ProductRef) bool { return ref.Has(version) }
		err := e.eachProduct(has, func(cat *Catalog, header []jsonc.Field, p *shallow) error {
			v, err := p.version(version)
			if err != nil {
				return err
			}
			if v == nil || !catalog.VersionMatches(filters, header, p.product(), v) {
				return nil
			}
			if _, err := p.remove(version); err != nil {
				return err
			}
			e.res.Removed = append(e.res.Removed, VersionRef{Product: p.Name, Version: version})
			return e.put(ctx, cat.ContentID, p)
		})
		if err == nil && len(e.res.Removed) == 0 {
			return fmt.Errorf("stream %s: %w %s%s", name, ErrNoSuchVersion, version, filterNote(filters))
		}
		return err
	})
}

// eachProduct loads in turn, for editing, every product of the base
// snapshot that want (which sees the snapshot's reference to it) selects;
// the others are not read.
func (e *editor) eachProduct(want func(*ProductRef) bool, fn func(cat *Catalog, header []jsonc.Field, p *shallow) error) error {
	pf := e.r.prefetch(productRefs(e.base, want))
	defer pf.close()
	for ci := range e.base.Catalogs {
		cat := &e.base.Catalogs[ci]
		header, err := e.header(cat.ContentID)
		if err != nil {
			return err
		}
		for range cat.Products {
			p, err := pf.next()
			if err != nil {
				return err
			}
			if p == nil {
				continue // not wanted: not read
			}
			if err := fn(cat, header, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Rollback moves the stream's head to an earlier snapshot of its history:
// steps entries back, or the newest earlier entry whose snapshot is to (a
// digest or a unique prefix of one). The move is a new history entry, so a
// rollback can be rolled back.
func (r *Repo) Rollback(ctx context.Context, name, to string, steps int, dryRun bool) (*Result, error) {
	if to == "" && steps < 1 {
		return nil, fmt.Errorf("rollback: --steps %d: must be at least 1", steps)
	}
	ss, err := r.s.Writer(ctx, "rollback "+name)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	var st *Stream
	var target *Entry
	err = ss.View(func(txn cas.Txn) error {
		var err error
		if st, err = GetStream(txn, name); err != nil {
			return err
		}
		n := 0
		return History(txn, name, func(e Entry) bool {
			switch {
			case to != "" && n > 0 && strings.HasPrefix(strings.TrimPrefix(string(e.Snapshot), "sha256:"), strings.TrimPrefix(to, "sha256:")):
				target = &e
			case to == "" && n == steps:
				target = &e
			}
			n++
			return target == nil
		})
	})
	if err != nil {
		return nil, err
	}
	if target == nil {
		if to != "" {
			return nil, fmt.Errorf("stream %s: snapshot %s: %w", name, to, ErrNoHistory)
		}
		return nil, fmt.Errorf("stream %s: %d steps back: %w (it has %d entries)", name, steps, ErrNoHistory, st.Seq)
	}
	doc, err := r.Doc(target.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("stream %s: cannot roll back to %s: %w", name, target.Snapshot, err)
	}
	// A snapshot out of gc's retained history may have lost its blobs;
	// check under the writer lock, where gc cannot reap.
	if err := ss.View(func(txn cas.Txn) error { return r.checkComplete(txn, target.Snapshot, doc) }); err != nil {
		return nil, fmt.Errorf("stream %s: cannot roll back: %w", name, err)
	}
	res := &Result{Stream: st, Snapshot: target.Snapshot, Counts: doc.Counts(), DryRun: dryRun,
		Summary: fmt.Sprintf("back to #%d (%s)", target.Seq, target.Summary)}
	if dryRun {
		return res, nil
	}
	err = ss.Update(func(txn cas.Txn) error {
		return appendEntry(txn, st, Entry{Snapshot: target.Snapshot, Time: r.s.Now().UTC(),
			Operation: fmt.Sprintf("rollback %s to #%d", name, target.Seq), Summary: res.Summary})
	})
	if err != nil {
		return nil, err
	}
	res.Stream = st
	return res, nil
}

// Resolve turns a reference into a snapshot: a stream name (its head),
// NAME@N (N entries back in its history) or a snapshot digest or unique
// prefix of one found in any stream's history.
func (r *Repo) Resolve(ctx context.Context, ref string) (digest.Digest, error) {
	var out digest.Digest
	err := r.view(ctx, func(txn cas.Txn) error {
		name, back, hasAt := strings.Cut(ref, "@")
		if hasAt {
			n, err := strconv.Atoi(back)
			if err != nil || n < 0 {
				return fmt.Errorf("%q: want NAME@N with N a number of steps back", ref)
			}
			if _, err := GetStream(txn, name); err != nil {
				return err
			}
			i := 0
			if err := History(txn, name, func(e Entry) bool {
				if i == n {
					out = e.Snapshot
					return false
				}
				i++
				return true
			}); err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("stream %s: %d steps back: %w", name, n, ErrNoHistory)
			}
			return nil
		}
		if st, err := GetStream(txn, ref); err == nil {
			out = st.Head
			return nil
		}
		hex := strings.TrimPrefix(ref, "sha256:")
		if len(hex) < 6 || strings.Trim(hex, "0123456789abcdef") != "" {
			return fmt.Errorf("%q: %w, and not a snapshot digest", ref, ErrNoStream)
		}
		streams, err := Streams(txn)
		if err != nil {
			return err
		}
		found := map[digest.Digest]bool{}
		for _, st := range streams {
			if err := History(txn, st.Name, func(e Entry) bool {
				if strings.HasPrefix(e.Snapshot.Encoded(), hex) {
					found[e.Snapshot] = true
				}
				return true
			}); err != nil {
				return err
			}
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("%q: no stream or snapshot of that name", ref)
		case 1:
			for d := range found {
				out = d
			}
			return nil
		default:
			return fmt.Errorf("%q: prefix matches %d snapshots", ref, len(found))
		}
	})
	return out, err
}
