package cas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/fsx"
)

// OpenBlob opens the pool file of d for reading. Reading needs no session:
// blobs are immutable. The returned reader checks the sha256 as it goes and
// fails at EOF with ErrCorrupt when the bytes do not match the name.
func (s *Store) OpenBlob(d digest.Digest) (*BlobReader, error) {
	f, err := s.openBlobFile(context.Background(), d)
	if err != nil {
		return nil, err
	}
	return &BlobReader{f: f, d: d, h: sha256.New(), Size: f.Size()}, nil
}

// openPoolFile opens the pool file of d with its size.
func (s *Store) openPoolFile(d digest.Digest) (localFile, error) {
	f, err := fsx.OpenRead(s.BlobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return localFile{}, fmt.Errorf("%s: %w", d, ErrBlobNotFound)
	}
	if err != nil {
		return localFile{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return localFile{}, err
	}
	return localFile{File: f, size: fi.Size()}, nil
}

// BlobReader reads a blob and verifies it at EOF.
type BlobReader struct {
	f    BlobFile
	d    digest.Digest
	h    hash.Hash
	Size int64
}

func (r *BlobReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(r.h.Sum(nil)); got != r.d.Encoded() {
			return n, fmt.Errorf("blob %s: content hashes to sha256:%s: %w", r.d, got, ErrCorrupt)
		}
	}
	return n, err
}

// Close closes the file.
func (r *BlobReader) Close() error { return r.f.Close() }

// Resolve turns a digest or a unique prefix of at least 6 hex digits
// ("sha256:" optional) into the digest of a blob in the pool.
func (s *Store) Resolve(ref string) (digest.Digest, error) {
	hexpart := strings.TrimPrefix(ref, "sha256:")
	if s.remote != nil {
		return s.resolveRecord(hexpart, ref)
	}
	if len(hexpart) == 64 {
		d, err := ParseDigest(hexpart)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(s.BlobPath(d)); err != nil {
			return "", fmt.Errorf("%s: %w", d, ErrBlobNotFound)
		}
		return d, nil
	}
	if len(hexpart) < 6 || len(hexpart) > 64 || strings.Trim(hexpart, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q: %w: want sha256:<hex> or a prefix of at least 6 lowercase hex digits", ref, ErrBadDigest)
	}
	ents, err := os.ReadDir(filepath.Join(s.blobsPath(), hexpart[:2]))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var found []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), hexpart) && len(e.Name()) == 64 {
			found = append(found, e.Name())
		}
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s: %w", ref, ErrBlobNotFound)
	case 1:
		return ParseDigest(found[0])
	default:
		return "", fmt.Errorf("%s: %w: prefix matches %d blobs", ref, ErrBadDigest, len(found))
	}
}

// resolveRecord is Resolve by the blob records (a store with a remote,
// whose pool is not a directory to list).
func (s *Store) resolveRecord(hexpart, ref string) (digest.Digest, error) {
	if len(hexpart) < 6 || len(hexpart) > 64 || strings.Trim(hexpart, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q: %w: want sha256:<hex> or a prefix of at least 6 lowercase hex digits", ref, ErrBadDigest)
	}
	raw, _ := hex.DecodeString(hexpart[:len(hexpart)&^1])
	ss, err := s.Reader(context.Background())
	if err != nil {
		return "", err
	}
	defer ss.Close()
	var found []digest.Digest
	err = ss.View(func(txn Txn) error {
		return txn.Scan(append([]byte{PrefixBlob}, raw...), nil, func(k, _ []byte) error {
			if d := digestFromKey(k); strings.HasPrefix(d.Encoded(), hexpart) {
				found = append(found, d)
			}
			if len(found) > 1 {
				return ErrStopScan
			}
			return nil
		})
	})
	if err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s: %w", ref, ErrBlobNotFound)
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("%s: %w: prefix matches more than one blob", ref, ErrBadDigest)
	}
}
